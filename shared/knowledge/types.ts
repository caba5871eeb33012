/** A run of a document's text with where it came from (`page 2`, `section Opening hours`). */
export interface TextSection {
  text: string;
  position: string;
}

/** A passage to embed: sized for retrieval, overlapping its neighbour, with its position. */
export interface TextChunk {
  index: number;
  text: string;
  position: string;
}
