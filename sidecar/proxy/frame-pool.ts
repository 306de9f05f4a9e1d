// Reused memory for the request frames the sidecar keeps after a read (upgrade mode: the engine
// keeps its batches by reference until their outcome). A frame copied into a fresh buffer per
// request lives a few milliseconds, long enough to be promoted by the young-generation GC, and
// then waits for a full mark-compact (rare with --initial-old-space-size) while malloc keeps the
// high water: measured, up to 28 MiB of dead request buffers in a bench round. A frame taken
// from here goes back when every holder dropped it (FrameLease), and the next request reuses it.
//
// The rules that keep this safe:
// - A lease starts with one hold (its taker's). Whoever keeps a view of the bytes past the call
//   that handed it the lease holds it (hold) and drops it when done with the bytes (drop),
//   including bytes a socket write may still read (the broker-client's rule: a request's
//   promise settles after its bytes were written or its socket was destroyed).
// - A lease nobody drops is simply never reused: the garbage collector frees it as before.
// - Release happens after the current turn of the event loop (setImmediate), so promise
//   callbacks that ran on the way to the last drop have finished. The buffer's ArrayBuffer is
//   then detached (ArrayBuffer#transfer moves its memory to the pool without a copy): a view kept
//   by mistake has length 0 and throws on read instead of reading the next request's bytes.
//   Under IDEMPO_TEST_ONLY_POISON_READS (every test) the bytes are overwritten first.
//
// Bounded in bytes: what waits for reuse by POOL_IDLE_BYTES. What is in use (a buffer is at most
// 1/4 larger than its frame: size classes, 4 per doubling): a request until answered counts in
// --max-buffered-bytes; a batch that goes on past its request's answer (held under its stamp, or
// past its client's deadline) takes its own copy and lets the request go (upgrader.ts ownBytes),
// so what stays is what --max-pending-bytes counts; a send in flight holds its request until its
// bytes are written or its socket destroyed.

/** Frames smaller than this are not pooled (Node slices them from its own 8 KiB pool). */
const MIN_POOLED = 4 * 1024;
/** Frames larger than this are not pooled (Kafka's default max.request.size is 1 MiB). */
const MAX_POOLED = 1024 * 1024;
/** Released buffers kept for reuse, in bytes; beyond it they are left to the garbage collector. */
export const POOL_IDLE_BYTES = 4 * 1024 * 1024;

const POISON = process.env.IDEMPO_TEST_ONLY_POISON_READS === '1';
const POISON_BYTE = 0xa5;
const EMPTY = Buffer.alloc(0);

/** The pooled size for `n` bytes: rounded up to a quarter of the power of two below it. */
export function classBytes(n: number): number {
  const step = 2 ** Math.floor(Math.log2(n - 1)) / 4;
  return Math.ceil(n / step) * step;
}

export class FramePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private idle = 0;
  private releasing: FrameLease[] = [];
  private scheduled = false;

  constructor(private readonly maxIdleBytes = POOL_IDLE_BYTES) {}

  /** Bytes waiting for reuse. */
  get idleBytes(): number {
    return this.idle;
  }

  /** A buffer of exactly `n` bytes (contents undefined), held once by the caller. */
  acquire(n: number): FrameLease {
    if (n < MIN_POOLED || n > MAX_POOLED) return new FrameLease(this, Buffer.allocUnsafe(n), false);
    const size = classBytes(n);
    const ab = this.free.get(size)?.pop();
    if (ab) this.idle -= size;
    return new FrameLease(this, Buffer.from(ab ?? Buffer.allocUnsafeSlow(size).buffer, 0, n), true);
  }

  /** @internal FrameLease's last drop. */
  release(lease: FrameLease): void {
    this.releasing.push(lease);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const leases = this.releasing;
    this.releasing = [];
    for (const lease of leases) {
      const buf = lease.detach();
      if (POISON) buf.fill(POISON_BYTE);
      if (!lease.pooled) continue;
      // Detaches every view of the old one (ES2024; Node 24 has it, the ES2023 lib types do not).
      const ab = (buf.buffer as ArrayBuffer & { transfer(): ArrayBuffer }).transfer();
      const size = ab.byteLength;
      if (this.idle + size > this.maxIdleBytes) continue;
      let list = this.free.get(size);
      if (!list) this.free.set(size, (list = []));
      list.push(ab);
      this.idle += size;
    }
  }
}

/** One pooled frame buffer and how many holders still use its bytes. */
export class FrameLease {
  private holds = 1;

  constructor(
    private readonly pool: FramePool,
    private bytes: Buffer,
    /** Its memory is the pool's (else a plain allocation: only poisoned on release, in tests). */
    readonly pooled: boolean,
  ) {}

  /** The leased bytes; valid until the last drop. */
  get buf(): Buffer {
    return this.bytes;
  }

  /** One more holder keeps views of the bytes. */
  hold(): void {
    if (this.holds <= 0) throw new Error('FrameLease.hold after its last drop');
    this.holds++;
  }

  /** A holder is done with the bytes; after the last one they go back to the pool. */
  drop(): void {
    if (this.holds <= 0) throw new Error('FrameLease.drop after its last drop');
    if (--this.holds === 0) this.pool.release(this);
  }

  /** @internal The pool takes the bytes back. */
  detach(): Buffer {
    const b = this.bytes;
    this.bytes = EMPTY;
    return b;
  }
}

/** The sidecar's pool (one event loop: no locking). */
export const framePool = new FramePool();
