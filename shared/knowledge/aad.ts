/** Associated data of knowledge ciphertext: a sealed value moved to another row or point does not open. */
export const knowledgeTitleAad = (documentId: string): string => `knowledge_documents.title:${documentId}`;
export const knowledgeTextAad = (documentId: string): string => `knowledge_documents.text:${documentId}`;
export const passageAad = (pointId: string): string => `knowledge.passage:${pointId}`;
