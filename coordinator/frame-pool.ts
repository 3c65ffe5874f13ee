/**
 * Reused buffers for the weights broadcasts. A model-sized frame allocated afresh each phase costs
 * its page faults every time (≈ 1–2 ms per 1.2 MB frame on a loaded machine); reused, encoding is
 * one warm copy. A frame comes back to the pool only once every socket it was handed to has
 * written it out (ws's send callbacks), so a buffer the kernel may still read is never overwritten;
 * a frame whose callbacks never all come is simply left to the garbage collector.
 */
export class FramePool {
  private readonly free: Buffer[] = [];
  /** Frames handed out so far that were fresh allocations (for tests and benchmarks). */
  allocated = 0;

  constructor(private readonly keep = 4) {}

  /** A whole buffer of exactly `byteLength` bytes: a free one of that size, else a new one. */
  readonly alloc = (byteLength: number): Buffer => {
    const i = this.free.findIndex((b) => b.length === byteLength);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    this.allocated++;
    return Buffer.allocUnsafeSlow(byteLength);
  };

  /** Gives a frame back once nothing reads it any more. */
  release(frame: Buffer): void {
    if (this.free.length < this.keep && !this.free.includes(frame)) this.free.push(frame);
  }
}
