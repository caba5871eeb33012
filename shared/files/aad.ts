/** Associated data of a file's parts: ciphertext moved to another file (or another purpose) does not decrypt. */
export const contentAad = (fileId: string): string => `file:${fileId}`;
export const nameAad = (fileId: string): string => `files.name:${fileId}`;
export const dataKeyAad = (fileId: string): string => `files.key:${fileId}`;
