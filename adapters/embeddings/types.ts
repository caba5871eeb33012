/** Turns passages (and queries) into dense vectors. One implementation per endpoint kind. */
export interface Embedder {
  /** Names the vector space: the Qdrant collection is per model and dimension. */
  readonly model: string;
  readonly dimension: number;
  /** One unit-length vector per text, in order. Throws UnavailableError when the endpoint does not answer. */
  embed(texts: readonly string[]): Promise<number[][]>;
}
