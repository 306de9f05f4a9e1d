// Splits a TCP byte stream into Kafka frames (int32 size prefix + payload).
// Whole frames inside one chunk are handed out as views; only a frame that spans
// chunks is copied once, when it is complete. Sizes are checked before anything is
// buffered, so a hostile length never allocates.

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Smallest legal request/response payload: a response header is 4 bytes (correlation id). */
const MIN_FRAME = 4;

export class FrameSplitter {
  private parts: Buffer[] = [];
  private buffered = 0;
  private need = -1; // payload size of the frame being assembled, -1 while the prefix is incomplete

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes held for an incomplete frame (for tests and backpressure accounting). */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Feeds a chunk and returns the frames it completes (payload without the size prefix). */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let data = chunk;
    if (this.buffered > 0) {
      this.parts.push(chunk);
      this.buffered += chunk.length;
      if (this.need < 0) {
        if (this.buffered < 4) return out;
        data = Buffer.concat(this.parts, this.buffered);
        this.parts = [];
        this.buffered = 0;
      } else {
        if (this.buffered < this.need + 4) return out;
        data = Buffer.concat(this.parts, this.buffered);
        this.parts = [];
        this.buffered = 0;
        this.need = -1;
      }
    }
    let off = 0;
    while (data.length - off >= 4) {
      const size = data.readInt32BE(off);
      this.check(size);
      if (data.length - off - 4 < size) {
        this.need = size;
        break;
      }
      out.push(data.subarray(off + 4, off + 4 + size));
      off += 4 + size;
    }
    if (off < data.length) {
      const rest = data.subarray(off);
      this.parts = [rest];
      this.buffered = rest.length;
      if (this.buffered < 4) this.need = -1;
    } else {
      this.need = -1;
    }
    return out;
  }

  private check(size: number): void {
    if (size < MIN_FRAME) throw new FrameError(`invalid frame size ${size}`);
    if (size > this.maxFrameBytes) {
      throw new FrameError(`frame of ${size} bytes exceeds the limit of ${this.maxFrameBytes} bytes (--max-frame-bytes)`);
    }
  }
}

/** Prepends the size prefix. */
export function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeInt32BE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}
