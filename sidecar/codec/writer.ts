// Growable big-endian writer for Kafka's wire primitives. It runs on every produce, so it
// writes into one preallocated Buffer and doubles it when full instead of collecting chunks.

import { CodecError } from './reader.js';

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export class Writer {
  buf: Buffer;
  offset = 0;
  /**
   * With `keepLarge`: byte strings written by reference instead of copied, each inserted at
   * `at` (an offset in `buf`); toChunks() interleaves them with the copied bytes.
   */
  private slices: Array<{ readonly at: number; bytes: Buffer | Uint8Array }> | undefined;
  private sliceMin = Infinity;

  constructor(initialSize = 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialSize));
  }

  /**
   * From now on raw() keeps byte strings of `minBytes` or more by reference (record batches in
   * a Produce request): the output is toChunks(), and those buffers must not change until it
   * has been written.
   */
  keepLarge(minBytes: number): void {
    this.sliceMin = minBytes;
  }

  /** Bytes written so far, referenced strings included. */
  get length(): number {
    let n = this.offset;
    const slices = this.slices;
    if (slices) for (let i = 0; i < slices.length; i++) n += slices[i].bytes.length;
    return n;
  }

  /** The output in order: views of the internal buffer and the referenced byte strings. */
  toChunks(): Array<Buffer | Uint8Array> {
    // (indexed loops: these run for every upgrader send, for...of made an iterator per loop before the JIT)
    const slices = this.slices;
    if (!slices || slices.length === 0) return [this.buf.subarray(0, this.offset)];
    // An array of its final size (a pushed-to empty array reserves 17 slots): counted first.
    let n = 0;
    let from = 0;
    for (let i = 0; i < slices.length; i++) {
      n += slices[i].at > from ? 2 : 1; // the copied bytes before it, if any, and the slice
      from = slices[i].at;
    }
    if (this.offset > from) n++;
    const out = new Array<Buffer | Uint8Array>(n);
    let k = 0;
    from = 0;
    for (let i = 0; i < slices.length; i++) {
      const s = slices[i];
      if (s.at > from) out[k++] = this.buf.subarray(from, s.at);
      out[k++] = s.bytes;
      from = s.at;
    }
    if (this.offset > from) out[k++] = this.buf.subarray(from, this.offset);
    return out;
  }

  /** Makes room for n more bytes. */
  ensure(n: number): void {
    if (this.offset + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.offset + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.offset);
    this.buf = next;
  }

  /** The bytes written so far, as a view of the internal buffer (valid until the next write). */
  toBuffer(): Buffer {
    if (this.slices?.length) throw new CodecError('writer holds referenced byte strings: use toChunks()');
    return this.buf.subarray(0, this.offset);
  }

  /** Forget the contents but keep the allocation, for reuse. */
  reset(): void {
    this.offset = 0;
    if (this.slices) this.slices.length = 0;
  }

  int8(v: number): void {
    this.ensure(1);
    this.buf.writeInt8(v, this.offset++);
  }

  uint8(v: number): void {
    this.ensure(1);
    this.buf[this.offset++] = v & 0xff;
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.offset++] = v ? 1 : 0;
  }

  // The integers are written a byte at a time (Buffer#writeInt32BE & co. validate through
  // several calls and showed in profiles of every encoder); out-of-range values still throw a
  // RangeError, as Buffer's do: a value that does not fit is a bug, never silently wrapped.

  int16(v: number): void {
    if ((v << 16) >> 16 !== v) throw outOfRange('int16', v);
    this.ensure(2);
    const buf = this.buf;
    const o = this.offset;
    buf[o] = v >> 8;
    buf[o + 1] = v;
    this.offset = o + 2;
  }

  uint16(v: number): void {
    if ((v & 0xffff) !== v) throw outOfRange('uint16', v);
    this.ensure(2);
    const buf = this.buf;
    const o = this.offset;
    buf[o] = v >> 8;
    buf[o + 1] = v;
    this.offset = o + 2;
  }

  int32(v: number): void {
    if ((v | 0) !== v) throw outOfRange('int32', v);
    this.ensure(4);
    this.put32(v);
  }

  uint32(v: number): void {
    if (v >>> 0 !== v) throw outOfRange('uint32', v);
    this.ensure(4);
    this.put32(v);
  }

  /** The 4 bytes of v's low 32 bits, big-endian (room ensured). */
  private put32(v: number): void {
    const buf = this.buf;
    const o = this.offset;
    buf[o] = v >>> 24;
    buf[o + 1] = v >>> 16;
    buf[o + 2] = v >>> 8;
    buf[o + 3] = v;
    this.offset = o + 4;
  }

  int64(v: bigint): void {
    this.ensure(8);
    // writeBigInt64BE makes BigInts to split the value (every offset and timestamp of every
    // answer): within ±2^53 the halves are plain numbers. The low half is taken as an int32
    // (`| 0`: the same four bytes) so that it is no heap number: -1 (no log append time) would
    // otherwise make a low half of 2^32 - 1 at every write.
    if (v >= MIN_SAFE && v <= MAX_SAFE) {
      const n = Number(v);
      const hi = Math.floor(n / 0x100000000);
      this.put32(hi);
      this.put32((n - hi * 0x100000000) | 0);
    } else this.offset = this.buf.writeBigInt64BE(v, this.offset);
  }

  float64(v: number): void {
    this.ensure(8);
    this.offset = this.buf.writeDoubleBE(v, this.offset);
  }

  uuid(v: Buffer): void {
    if (v.length !== 16) throw new CodecError(`uuid must be 16 bytes, got ${v.length}`);
    this.raw(v);
  }

  /** Unsigned LEB128 varint of a value in [0, 2^32). */
  uvarint(v: number): void {
    if (v < 0 || v > 0xffffffff || !Number.isInteger(v)) throw new CodecError(`uvarint out of range: ${v}`);
    this.ensure(5);
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.offset++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[this.offset++] = v;
  }

  /** Zig-zag signed 32-bit varint. */
  varint(v: number): void {
    this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  /** Zig-zag signed 64-bit varint. */
  varlong(v: bigint): void {
    let u = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
    this.ensure(10);
    while (u >= 0x80n) {
      this.buf[this.offset++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.offset++] = Number(u);
  }

  raw(b: Buffer | Uint8Array): void {
    if (b.length >= this.sliceMin) {
      // (the array made with its first slice: an array of one, where an empty one pushed to reserves 17 slots)
      if (!this.slices) this.slices = [{ at: this.offset, bytes: b }];
      else if (!this.joinLast(b)) this.slices.push({ at: this.offset, bytes: b });
      return;
    }
    this.ensure(b.length);
    this.buf.set(b, this.offset);
    this.offset += b.length;
  }

  /**
   * When `b` lies in the same memory as the last referenced string, after it, and the bytes
   * between them there are exactly the bytes copied since (the upgrader's Produce request frames
   * a client request's batches as the client did, in the same order), the reference grows over
   * both and the copy is taken back: one chunk (one socket write) instead of three. The output's
   * bytes are the same either way.
   */
  private joinLast(b: Buffer | Uint8Array): boolean {
    const last = this.slices!.at(-1);
    if (!last || b.buffer !== last.bytes.buffer) return false;
    const gap = this.offset - last.at;
    const start = last.bytes.byteOffset;
    if (b.byteOffset !== start + last.bytes.length + gap) return false;
    const joined = Buffer.from(b.buffer, start, last.bytes.length + gap + b.length);
    for (let i = 0; i < gap; i++) if (joined[last.bytes.length + i] !== this.buf[last.at + i]) return false;
    last.bytes = joined;
    this.offset = last.at;
    return true;
  }

  private utf8(s: string, n: number): void {
    this.ensure(n);
    // A short ASCII string (n bytes for n characters: the client id in every request header,
    // topic names) is written a byte per character: Buffer#write allocates per call.
    if (n === s.length && n <= 64) {
      const buf = this.buf;
      for (let i = 0; i < n; i++) buf[this.offset + i] = s.charCodeAt(i);
      this.offset += n;
    } else this.offset += this.buf.write(s, this.offset, n, 'utf8');
  }

  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    if (n > 0x7fff) throw new CodecError(`string of ${n} bytes exceeds 32767`);
    this.int16(n);
    this.utf8(s, n);
  }

  nullableString(s: string | null): void {
    if (s === null) this.int16(-1);
    else this.string(s);
  }

  compactString(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    if (n > 0x7fff) throw new CodecError(`string of ${n} bytes exceeds 32767`);
    this.uvarint(n + 1);
    this.utf8(s, n);
  }

  compactNullableString(s: string | null): void {
    if (s === null) this.uvarint(0);
    else this.compactString(s);
  }

  bytes(b: Buffer): void {
    this.int32(b.length);
    this.raw(b);
  }

  nullableBytes(b: Buffer | null): void {
    if (b === null) this.int32(-1);
    else this.bytes(b);
  }

  compactBytes(b: Buffer): void {
    this.uvarint(b.length + 1);
    this.raw(b);
  }

  compactNullableBytes(b: Buffer | null): void {
    if (b === null) this.uvarint(0);
    else this.compactBytes(b);
  }

  /**
   * Starts a length-prefixed (uvarint) region whose size is not known yet, e.g. one tagged
   * field. One byte is reserved, which fits any payload under 128 bytes; endSized moves the
   * payload when the prefix needs more.
   */
  beginSized(): number {
    this.ensure(1);
    return this.offset++;
  }

  endSized(pos: number): void {
    // (its size would miss them)
    if (this.slices?.some((s) => s.at > pos)) throw new CodecError('a sized region cannot hold referenced byte strings');
    const size = this.offset - pos - 1;
    if (size < 0x80) {
      this.buf[pos] = size;
      return;
    }
    let extra = 0;
    for (let s = size; s >= 0x80; s = Math.floor(s / 128)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(pos + 1 + extra, pos + 1, this.offset);
    const end = this.offset + extra;
    this.offset = pos;
    this.uvarint(size);
    this.offset = end;
  }

  /**
   * Writes the raw unknown tagged fields whose tags lie in [lo, hi), ascending, so they
   * interleave with known tags in the order Kafka requires.
   */
  unknownTags(tags: Map<number, Buffer>, lo: number, hi: number): void {
    const keys: number[] = [];
    for (const k of tags.keys()) if (k >= lo && k < hi) keys.push(k);
    if (keys.length > 1) keys.sort((a, b) => a - b);
    for (const k of keys) {
      const b = tags.get(k)!;
      this.uvarint(k);
      this.uvarint(b.length);
      this.raw(b);
    }
  }
}

function outOfRange(type: string, v: number): RangeError {
  return new RangeError(`The value of "value" is out of range for ${type}: ${v}`);
}
