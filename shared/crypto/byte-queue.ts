/** FIFO of byte chunks that hands out exact-length slices without re-concatenating everything on each write. */
export class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Copies the first `count` bytes without consuming them; `count` must not exceed `length`. */
  peek(count: number): Buffer {
    return this.#read(count, false);
  }

  /** Removes and returns the first `count` bytes (possibly a view of a pushed chunk); `count` must not exceed `length`. */
  take(count: number): Buffer {
    return this.#read(count, true);
  }

  #read(count: number, consume: boolean): Buffer {
    if (count > this.#length) throw new RangeError('ByteQueue: not enough bytes');
    const first = this.#chunks[0];
    if (consume && first !== undefined && first.length >= count) {
      // The common case with large input chunks: a view, no copy.
      const slice = first.subarray(0, count);
      if (first.length === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
      this.#length -= count;
      return slice;
    }
    const out = Buffer.allocUnsafe(count);
    let written = 0;
    let index = 0;
    while (written < count) {
      const chunk = this.#chunks[index];
      if (chunk === undefined) break;
      const used = Math.min(chunk.length, count - written);
      chunk.copy(out, written, 0, used);
      written += used;
      if (consume && used < chunk.length) {
        this.#chunks[index] = chunk.subarray(used);
      } else {
        index += 1;
      }
    }
    if (consume) {
      this.#chunks.splice(0, index);
      this.#length -= count;
    }
    return out;
  }
}
