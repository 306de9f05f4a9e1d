// Bounds-checked reader for Kafka's big-endian wire primitives.
// Every failure is a CodecError naming what was being read, so a malformed frame from a
// client or broker becomes one clear error instead of a RangeError or a huge allocation.

export class CodecError extends Error {
  override name = 'CodecError';
}

const EMPTY = Buffer.alloc(0);

/**
 * A big-endian int64 at `off` as a bigint. One BigInt conversion when the value is within
 * ±2^53 (offsets, timestamps, producer ids: every value seen in practice);
 * Buffer.readBigInt64BE takes four BigInt operations for every value, and produce requests
 * and answers carry several int64s per partition (6 % of observe's CPU in a profile).
 */
export function int64At(buf: Buffer, off: number): bigint {
  if (off < 0 || off + 8 > buf.length) throw new RangeError(`offset ${off} is outside a buffer of ${buf.length} bytes`);
  const hi = i32(buf, off);
  if (hi >= -0x200000 && hi < 0x200000) {
    const lo = i32(buf, off + 4) >>> 0;
    // -1 ("none": a plain producer's id, a CreateTime answer's logAppendTime, an error's offset)
    // is the most common int64 on the wire: a literal, not a BigInt allocated per read.
    if (hi === -1 && lo === 0xffffffff) return -1n;
    return BigInt(hi * 0x100000000 + lo);
  }
  return buf.readBigInt64BE(off);
}

/**
 * Big-endian integers from bytes the caller has bounds-checked (Reader.need). Buffer#readInt32BE
 * and its kin check the offset again and bring a cold error path that V8 compiles into every
 * decoder that inlines them: these are a few instructions.
 */
function i32(b: Buffer, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

function i16(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16)) >> 16;
}

/**
 * A signed byte at `off`. Buffer.readInt8 validates its argument through a wrapper that
 * allocates an array per call (while the caller is not yet optimised); batch checks read the
 * magic byte of every batch.
 */
export function int8At(buf: Buffer, off: number): number {
  const b = buf[off];
  if (b === undefined) throw new RangeError(`offset ${off} is outside a buffer of ${buf.length} bytes`);
  return (b << 24) >> 24;
}

export class Reader {
  buf: Buffer;
  offset: number;
  /** Exclusive end of the readable region (a frame may sit inside a larger buffer). */
  end: number;

  constructor(buf: Buffer, offset = 0, end = buf.length) {
    this.buf = buf;
    this.offset = offset;
    // Never past the buffer: the integer readers below rely on need() for their bounds.
    this.end = Math.min(end, buf.length);
  }

  remaining(): number {
    return this.end - this.offset;
  }

  /** Throws unless n more bytes are available. */
  need(n: number, what: string): void {
    if (n > this.end - this.offset) {
      throw new CodecError(
        `truncated input reading ${what}: need ${n} bytes at offset ${this.offset}, ${this.end - this.offset} left`,
      );
    }
  }

  error(msg: string): CodecError {
    return new CodecError(`${msg} (at offset ${this.offset})`);
  }

  int8(what = 'int8'): number {
    this.need(1, what);
    return int8At(this.buf, this.offset++);
  }

  uint8(what = 'uint8'): number {
    this.need(1, what);
    return this.buf[this.offset++]!;
  }

  bool(what = 'bool'): boolean {
    this.need(1, what);
    return this.buf[this.offset++] !== 0;
  }

  int16(what = 'int16'): number {
    this.need(2, what);
    const v = i16(this.buf, this.offset);
    this.offset += 2;
    return v;
  }

  uint16(what = 'uint16'): number {
    this.need(2, what);
    const v = i16(this.buf, this.offset) & 0xffff;
    this.offset += 2;
    return v;
  }

  int32(what = 'int32'): number {
    this.need(4, what);
    const v = i32(this.buf, this.offset);
    this.offset += 4;
    return v;
  }

  uint32(what = 'uint32'): number {
    this.need(4, what);
    const v = i32(this.buf, this.offset) >>> 0;
    this.offset += 4;
    return v;
  }

  int64(what = 'int64'): bigint {
    this.need(8, what);
    const v = int64At(this.buf, this.offset);
    this.offset += 8;
    return v;
  }

  float64(what = 'float64'): number {
    this.need(8, what);
    const v = this.buf.readDoubleBE(this.offset);
    this.offset += 8;
    return v;
  }

  /** 16 raw bytes, a view into the input (Kafka's Uuid). */
  uuid(what = 'uuid'): Buffer {
    this.need(16, what);
    const v = this.buf.subarray(this.offset, this.offset + 16);
    this.offset += 16;
    return v;
  }

  /** Unsigned LEB128 varint, at most 5 bytes (32 bits), as Kafka's ByteUtils.readUnsignedVarint. */
  uvarint(what = 'uvarint'): number {
    const buf = this.buf;
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 5; i++) {
      if (this.offset >= this.end) this.need(1, what);
      const b = buf[this.offset++]!;
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (value > 0xffffffff) throw this.error(`varint too long reading ${what}`);
        return value;
      }
      mul *= 128;
    }
    throw this.error(`varint longer than 5 bytes reading ${what}`);
  }

  /** Zig-zag signed 32-bit varint. */
  varint(what = 'varint'): number {
    const u = this.uvarint(what);
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** Zig-zag signed 64-bit varint (record fields), at most 10 bytes. */
  varlong(what = 'varlong'): bigint {
    const buf = this.buf;
    let value = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.offset >= this.end) this.need(1, what);
      const b = buf[this.offset++]!;
      value |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return (value >> 1n) ^ -(value & 1n);
      shift += 7n;
    }
    throw this.error(`varlong longer than 10 bytes reading ${what}`);
  }

  /** Raw bytes as a view (no copy). */
  raw(n: number, what = 'bytes'): Buffer {
    if (n < 0) throw this.error(`negative length ${n} reading ${what}`);
    this.need(n, what);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  private str(n: number, what: string): string {
    this.need(n, what);
    const s = this.buf.toString('utf8', this.offset, this.offset + n);
    this.offset += n;
    return s;
  }

  /** A string's length prefix, checked as each string reader checks it; -1 for null. */
  private stringLength(what: string, compact: boolean, nullable: boolean): number {
    if (compact) {
      const n = this.uvarint(what) - 1;
      if (n < 0) {
        if (nullable) return -1;
        throw this.error(`null length for non-nullable ${what}`);
      }
      if (n > 0x7fff) throw this.error(`string length ${n} exceeds 32767 reading ${what}`);
      return n;
    }
    const n = this.int16(what);
    if (n === -1 && nullable) return -1;
    if (n < 0) throw this.error(nullable ? `negative length ${n} reading ${what}` : `null or negative length ${n} for non-nullable ${what}`);
    return n;
  }

  string(what = 'string'): string {
    return this.str(this.stringLength(what, false, false), what);
  }

  nullableString(what = 'string'): string | null {
    const n = this.stringLength(what, false, true);
    return n === -1 ? null : this.str(n, what);
  }

  compactString(what = 'string'): string {
    return this.str(this.stringLength(what, true, false), what);
  }

  compactNullableString(what = 'string'): string | null {
    const n = this.stringLength(what, true, true);
    return n === -1 ? null : this.str(n, what);
  }

  /** Steps over a string with the checks its reader makes, allocating nothing. */
  skipString(what: string, compact: boolean, nullable: boolean): void {
    const n = this.stringLength(what, compact, nullable);
    if (n > 0) this.skip(n, what);
  }

  /** Steps over n bytes (checked). */
  skip(n: number, what = 'bytes'): void {
    if (n < 0) throw this.error(`negative length ${n} reading ${what}`);
    this.need(n, what);
    this.offset += n;
  }

  bytes(what = 'bytes'): Buffer {
    const n = this.int32(what);
    if (n < 0) throw this.error(`null or negative length ${n} for non-nullable ${what}`);
    return n === 0 ? EMPTY : this.raw(n, what);
  }

  nullableBytes(what = 'bytes'): Buffer | null {
    const n = this.int32(what);
    if (n === -1) return null;
    if (n < 0) throw this.error(`negative length ${n} reading ${what}`);
    return this.raw(n, what);
  }

  compactBytes(what = 'bytes'): Buffer {
    const n = this.uvarint(what) - 1;
    if (n < 0) throw this.error(`null length for non-nullable ${what}`);
    return this.raw(n, what);
  }

  compactNullableBytes(what = 'bytes'): Buffer | null {
    const n = this.uvarint(what) - 1;
    if (n < 0) return null;
    return this.raw(n, what);
  }

  /**
   * Array length (int32, -1 = null). Counts are bounded by the bytes left so a forged
   * count can never make us allocate or loop beyond the input.
   */
  arrayLength(what: string, minElemSize = 1): number {
    const n = this.int32(what);
    if (n === -1) return -1;
    if (n < 0) throw this.error(`negative array length ${n} reading ${what}`);
    if (n * minElemSize > this.end - this.offset) {
      throw this.error(`array length ${n} of ${what} exceeds the ${this.end - this.offset} bytes left`);
    }
    return n;
  }

  /** Compact array length (uvarint N+1, 0 = null), bounded like arrayLength. */
  compactArrayLength(what: string, minElemSize = 1): number {
    const n = this.uvarint(what) - 1;
    if (n < 0) return -1;
    if (n * minElemSize > this.end - this.offset) {
      throw this.error(`array length ${n} of ${what} exceeds the ${this.end - this.offset} bytes left`);
    }
    return n;
  }

  /**
   * Reads a tagged-field section and keeps every field raw (views into the input), in the
   * order read. Returns undefined when the section is empty.
   */
  taggedFields(what = 'tagged fields'): Map<number, Buffer> | undefined {
    let n = this.uvarint(what);
    if (n === 0) return undefined;
    // Kafka requires ascending tags; we accept any order (the broker does) and re-emit sorted.
    const out = new Map<number, Buffer>();
    for (; n > 0; n--) {
      const tag = this.uvarint(`${what} tag`);
      const size = this.uvarint(`${what} size`);
      out.set(tag, this.raw(size, `${what} tag ${tag}`));
    }
    return out;
  }

  /** Steps over a tagged-field section, with taggedFields' checks. */
  skipTaggedFields(what = 'tagged fields'): void {
    for (let n = this.uvarint(what); n > 0; n--) {
      this.uvarint(`${what} tag`);
      this.skip(this.uvarint(`${what} size`), what);
    }
  }

  /** Start of one tagged field's payload: returns its end, after checking it is in bounds. */
  taggedEnd(size: number, what: string): number {
    this.need(size, what);
    return this.offset + size;
  }

  /** A known tagged field must consume exactly its declared size. */
  expectAt(end: number, what: string): void {
    if (this.offset !== end) {
      throw this.error(`${what}: payload ended at ${this.offset}, its declared size ends at ${end}`);
    }
  }
}
