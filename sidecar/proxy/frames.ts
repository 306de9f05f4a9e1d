// Reads Kafka frames (int32 size prefix + payload) from a TCP byte stream.
//
// The reader peeks at the first bytes of every frame (the request header's api key, version
// and correlation id; an answer's correlation id) and lets its owner decide, per frame:
//   whole  — the payload in one buffer: a view into the chunk when the frame lies inside it,
//            otherwise a buffer of the announced size, filled as chunks arrive (one copy);
//   stream — the payload piece by piece as it arrives, views into the chunks, never copied
//            or held: how answers nobody transforms (a 50 MiB Fetch) go to the client;
//   wait   — not now (no memory budget, or the answer is not next in the client's order):
//            the reader keeps the unread rest of the chunk and stops until resume().
// Sizes are checked before anything is buffered, so a hostile length never allocates.
//
// Lent chunks (socket-reads.ts: a socket read into reused memory) are valid during push()
// only: a whole frame that lies inside one is delivered lent too (`frame(payload, true)`: the
// owner copies what it keeps, ownFrame()), bytes kept while waiting are copied, and streamed
// pieces are lent like the chunk they come from.

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Smallest legal request/response payload: a response header is 4 bytes (correlation id). */
const MIN_FRAME = 4;

/** Payload bytes shown to `begin`: api key, api version, correlation id of a request. */
export const PEEK_BYTES = 8;

export type FrameDecision = 'whole' | 'stream' | 'wait';

export interface FrameHandler {
  /**
   * A frame of `size` payload bytes begins; `head` holds its first min(size, PEEK_BYTES)
   * bytes (valid during the call only). After 'wait', begin is asked again on resume().
   */
  begin(size: number, head: Buffer): FrameDecision;
  /** 'whole': the complete payload; `lent`: a view into a lent chunk, valid during the call only (ownFrame). */
  frame(payload: Buffer, lent: boolean): void;
  /**
   * 'stream': the next payload bytes (the first piece starts at payload offset 0); `last` ends
   * the frame. With lent chunks, the bytes are lent too: valid during the call only.
   */
  piece(bytes: Buffer, last: boolean): void;
  /** Memory for a 'whole' frame that spans chunks (4 + its size bytes; frame-pool.ts). Absent: Buffer.allocUnsafe. */
  alloc?(bytes: number): Buffer;
}

export class FrameReader {
  /** Size prefix and peeked bytes of the next frame while they arrive (they may come in pieces). */
  private readonly head = Buffer.alloc(4 + PEEK_BYTES);
  /** The peeked bytes of a frame of PEEK_BYTES or more (nearly every one): shown to `begin` without a view per frame. */
  private readonly peek = this.head.subarray(4);
  private headLen = 0;
  /** Payload size of the frame being read; -1 until its head is complete. */
  private size = -1;
  /** How the frame is being read once decided; its payload bytes read so far. */
  private mode: 'whole' | 'stream' | undefined;
  private done = 0;
  /** 'whole' across chunks: the buffer being filled. */
  private whole: Buffer | undefined;
  /** Chunks (or their unread rest) kept while the owner said 'wait'. */
  private held: Buffer[] = [];
  private waiting = false;
  private stopped = false;

  /**
   * `handler`: best an object of a class (its methods on the prototype): the reader's calls then
   * meet the same functions for every connection, and V8 keeps their optimised code when a new
   * connection opens (an object of closures made per connection is a new call target each time).
   */
  constructor(
    private readonly maxFrameBytes: number,
    private readonly handler: FrameHandler,
    /** Chunks are valid during push() only (a reused read buffer): nothing of them is kept. */
    private readonly lent = false,
  ) {
    // `stopped` changes once per connection, when it ends. V8 treats a field it has never seen change as a constant
    // and, the first time one does, throws away every optimised function that read it: with the first connection
    // to end (in a bench, the warm-up's producer), the whole read path. Changed here once, before
    // anything is optimised, so V8 knows it as a field that changes.
    this.stopped = true;
    this.stopped = false;
  }

  /** Bytes this reader holds: a partial head, a 'whole' frame being filled, chunks kept while waiting. */
  get pendingBytes(): number {
    let n = this.headLen + (this.whole ? this.done : 0);
    for (const c of this.held) n += c.length;
    return n;
  }

  get isWaiting(): boolean {
    return this.waiting;
  }

  /** Feeds a chunk; throws FrameError on an invalid or oversized size prefix. */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    if (this.waiting) {
      this.held.push(this.lent ? Buffer.from(chunk) : chunk);
      return;
    }
    this.consume(chunk);
  }

  /**
   * After begin said 'wait': asks again, then reads what was held meanwhile. Never call it
   * from inside begin itself.
   */
  resume(): void {
    if (!this.waiting || this.stopped) return;
    this.waiting = false;
    if (this.size >= 0) this.consume(EMPTY); // the head is in this.head: decide first
    while (this.held.length > 0 && !this.waiting && !this.stopped) this.consume(this.held.shift()!);
  }

  /** Nothing more is read or delivered (the connection closed). */
  stop(): void {
    this.stopped = true;
    this.held.length = 0; // (emptied in place: `held` stays a field V8 has not seen change, see the constructor)
    this.whole = undefined;
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (!this.stopped && !this.waiting) {
      if (this.mode === undefined) {
        const start = off;
        const fresh = this.headLen === 0; // the head, if complete now, lies in this chunk from `start`
        off = this.readHead(chunk, off);
        if (this.size < 0) return; // the chunk ended inside the head
        const decision = this.handler.begin(this.size, this.headLen === this.head.length ? this.peek : this.head.subarray(4, this.headLen));
        if (decision === 'wait') return this.hold(chunk, fresh ? start : off, fresh);
        off = this.open(decision, chunk, fresh ? start : -1, off);
        continue;
      }
      if (off >= chunk.length) return;
      off = this.mode === 'whole' ? this.fill(chunk, off) : this.pass(chunk, off);
    }
  }

  /**
   * Collects the size prefix and the peeked bytes; sets this.size once both are in. At most 12
   * bytes, copied one by one: for so few, Buffer#copy's argument checks and views cost more than
   * the copy (and made this per-frame function a large one for V8 to compile).
   */
  private readHead(chunk: Buffer, off: number): number {
    if (this.size >= 0) return off; // complete already (asked again after 'wait')
    const head = this.head;
    const end = chunk.length;
    let len = this.headLen;
    if (len < 4) {
      while (len < 4 && off < end) head[len++] = chunk[off++]!;
      this.headLen = len;
      if (len < 4) return off;
      this.check(int32At(head, 0));
    }
    const size = int32At(head, 0);
    const want = 4 + Math.min(size, PEEK_BYTES);
    while (len < want && off < end) head[len++] = chunk[off++]!;
    this.headLen = len;
    if (len === want) this.size = size;
    return off;
  }

  /** 'wait': keep the frame's unread bytes; a head that lies in this chunk is read again on resume. */
  private hold(chunk: Buffer, from: number, fresh: boolean): void {
    this.waiting = true;
    if (fresh) {
      this.headLen = 0;
      this.size = -1;
    }
    const rest = chunk.subarray(from);
    if (rest.length > 0) this.held.unshift(this.lent ? Buffer.from(rest) : rest);
  }

  /** Starts reading the frame as decided; `frameStart` >= 0 when its prefix lies in `chunk` there. */
  private open(decision: 'whole' | 'stream', chunk: Buffer, frameStart: number, off: number): number {
    const size = this.size;
    const peeked = this.headLen - 4;
    if (decision === 'whole') {
      if (frameStart >= 0 && frameStart + 4 + size <= chunk.length) {
        // The common case: the frame lies inside the chunk; a view, no copy.
        const end = frameStart + 4 + size;
        this.reset();
        this.handler.frame(chunk.subarray(frameStart + 4, end), this.lent);
        return end;
      }
      if (peeked === size) {
        const payload = Buffer.from(this.head.subarray(0, this.headLen)).subarray(4);
        this.reset();
        this.handler.frame(payload, false);
        return off;
      }
      // The size prefix goes in front, as in a chunk: see framed().
      const buf = this.handler.alloc ? this.handler.alloc(4 + size) : Buffer.allocUnsafe(4 + size);
      this.head.copy(buf, 0, 0, this.headLen);
      this.whole = buf.subarray(4);
    }
    const first = decision === 'stream' ? (frameStart >= 0 ? chunk.subarray(frameStart + 4, off) : Buffer.from(this.head.subarray(4, this.headLen))) : undefined;
    this.mode = decision;
    this.done = peeked;
    this.headLen = 0;
    if (first) {
      const last = peeked === size;
      if (last) this.reset();
      this.handler.piece(first, last);
    }
    return off;
  }

  /** 'whole' across chunks: copies the next bytes into this.whole. */
  private fill(chunk: Buffer, off: number): number {
    const n = Math.min(this.size - this.done, chunk.length - off);
    chunk.copy(this.whole!, this.done, off, off + n);
    this.done += n;
    if (this.done === this.size) {
      const payload = this.whole!;
      this.reset();
      this.handler.frame(payload, false);
    }
    return off + n;
  }

  /** 'stream': the next bytes of the payload, as a view. */
  private pass(chunk: Buffer, off: number): number {
    const n = Math.min(this.size - this.done, chunk.length - off);
    this.done += n;
    const last = this.done === this.size;
    if (last) this.reset();
    this.handler.piece(chunk.subarray(off, off + n), last);
    return off + n;
  }

  private reset(): void {
    this.size = -1;
    this.mode = undefined;
    this.whole = undefined;
    this.done = 0;
    this.headLen = 0;
  }

  private check(size: number): void {
    if (size >= MIN_FRAME && size <= this.maxFrameBytes) return;
    this.headLen = 0; // the same bytes fail the same way if fed again
    if (size < MIN_FRAME) throw new FrameError(`invalid frame size ${size}`);
    if (size > this.maxFrameBytes) {
      throw new FrameError(`frame of ${size} bytes exceeds the limit of ${this.maxFrameBytes} bytes (--max-frame-bytes)`);
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** A big-endian int32 at `at` (in bounds: the caller checked), without Buffer#readInt32BE's checks. */
function int32At(b: Buffer, at: number): number {
  return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
}

/**
 * A payload FrameReader delivered whole, in a buffer of its own when it was lent (an exact
 * copy, its size prefix in front as framed() expects), else as it is.
 */
export function ownFrame(payload: Buffer, lent: boolean): Buffer {
  if (!lent) return payload;
  const buf = Buffer.allocUnsafe(4 + payload.length);
  buf.writeInt32BE(payload.length, 0);
  buf.set(payload, 4);
  return buf.subarray(4);
}

/**
 * The frame (size prefix + payload) as one buffer without a copy, when the 4 bytes before the
 * payload in its memory already hold its size: always so for payloads FrameReader delivered whole
 * (from a chunk, or its own buffer, which it fills the same way). Writing the frame is then one
 * socket write instead of two. Undefined otherwise (the caller writes a prefix of its own).
 * Checking the bytes, not trusting the caller, keeps it right for any buffer: bytes that equal the
 * size are the prefix.
 */
export function framed(payload: Buffer): Buffer | undefined {
  if (payload.byteOffset < 4) return undefined;
  const view = Buffer.from(payload.buffer, payload.byteOffset - 4, payload.length + 4);
  return view.readInt32BE(0) === payload.length ? view : undefined;
}

/** Prepends the size prefix. */
export function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeInt32BE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}
