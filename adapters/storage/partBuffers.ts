/**
 * The buffers multipart uploads read their parts into, shared by every upload of one storage: memory stays at
 * `count × size` whatever the number and size of the files being stored at once. A buffer is handed out, filled,
 * sent as one part and only then handed back, so it is never reused while a request still reads it.
 */
export class PartBuffers {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((buffer: Buffer) => void)[] = [];
  private created = 0;

  constructor(
    readonly count: number,
    readonly size: number,
  ) {}

  acquire(): Promise<Buffer> {
    const buffer = this.free.pop();
    if (buffer !== undefined) return Promise.resolve(buffer);
    if (this.created < this.count) {
      this.created += 1;
      // Outside Node's shared pool: a part buffer lives as long as the storage.
      return Promise.resolve(Buffer.allocUnsafeSlow(this.size));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(buffer: Buffer): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(buffer);
    else this.free.push(buffer);
  }
}
