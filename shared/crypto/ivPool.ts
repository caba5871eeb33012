import { randomFillSync } from 'node:crypto';

/** IVs handed out per refill of the pool. */
const IVS_PER_REFILL = 512;

/**
 * Random IVs of one size, cut from a buffer that one CSPRNG call fills (as Node's randomUUID does): a message costs
 * several encryptions, and a call into OpenSSL per 12-byte IV showed in the chat's CPU profile. Each byte is handed
 * out once; a spent buffer is replaced, never refilled, so an IV already handed out never changes.
 */
export class IvPool {
  private pool = Buffer.alloc(0);
  private offset = 0;

  constructor(private readonly size: number) {}

  next(): Buffer {
    if (this.offset + this.size > this.pool.length) {
      this.pool = randomFillSync(Buffer.allocUnsafeSlow(this.size * IVS_PER_REFILL));
      this.offset = 0;
    }
    const iv = this.pool.subarray(this.offset, this.offset + this.size);
    this.offset += this.size;
    return iv;
  }
}
