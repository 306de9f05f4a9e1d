import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { CodecError, Reader, int64At } from './reader.js';
import { Writer } from './writer.js';

const bytes = (fn: (w: Writer) => void) => {
  const w = new Writer(16);
  fn(w);
  return Buffer.from(w.toBuffer());
};

describe('Writer', () => {
  test('keepLarge: large byte strings by reference, the output the same bytes as a copying writer', () => {
    const batch = Buffer.alloc(3000, 7);
    const encode = (w: Writer) => {
      w.int32(42);
      w.compactNullableBytes(batch);
      w.int16(-1);
      w.bytes(Buffer.from('small'));
      w.nullableBytes(batch);
    };
    const w = new Writer(16);
    w.keepLarge(1024);
    encode(w);
    const chunks = w.toChunks();
    expect(chunks.filter((c) => c === batch)).toHaveLength(2); // not copied
    expect(w.length).toBe(chunks.reduce((n, c) => n + c.length, 0));
    expect(Buffer.concat(chunks)).toEqual(bytes(encode));
    expect(() => w.toBuffer()).toThrow(CodecError);
    const pos = w.beginSized();
    w.raw(batch);
    expect(() => w.endSized(pos)).toThrow(CodecError);
    w.reset();
    w.int8(1);
    expect(Buffer.concat(w.toChunks())).toEqual(Buffer.from([1]));
  });

  test('keepLarge: a byte string right after the last one in memory, with the bytes copied since between them, joins it', () => {
    // Two batches framed in one client request: [len][batch a][tag 0][index][len][batch b].
    const frame = Buffer.alloc(2 + 2000 + 6 + 1500);
    frame.fill(1, 0, 2002).fill(2, 2008);
    frame.set([0, 0, 0, 0, 3, 9], 2002);
    const a = frame.subarray(2, 2002);
    const b = frame.subarray(2008);
    const framed = (w: Writer, between: number[]) => {
      w.int16(5);
      w.raw(a);
      for (const x of between) w.uint8(x);
      w.raw(b);
      w.int8(0);
    };
    for (const [between, chunks] of [
      [[0, 0, 0, 0, 3, 9], 3], // the same bytes: one reference over a..b
      [[0, 0, 0, 0, 3, 8], 5], // different: kept apart
      [[0, 0, 0, 0, 3], 5], // shorter: not where b starts
    ] as const) {
      const w = new Writer(16);
      w.keepLarge(1024);
      framed(w, [...between]);
      const out = w.toChunks();
      expect(out).toHaveLength(chunks);
      expect(w.length).toBe(out.reduce((n, c) => n + c.length, 0));
      expect(Buffer.concat(out)).toEqual(bytes((c) => framed(c, [...between])));
    }
    // Not the same memory: kept apart.
    const w = new Writer(16);
    w.keepLarge(1024);
    w.raw(a);
    w.raw(Buffer.from(b));
    expect(w.toChunks()).toHaveLength(2);
  });

  test('grows by doubling and keeps earlier bytes', () => {
    const w = new Writer(16);
    for (let i = 0; i < 1000; i++) w.int32(i);
    expect(w.buf.length).toBe(4096);
    const r = new Reader(w.toBuffer());
    for (let i = 0; i < 1000; i++) expect(r.int32()).toBe(i);
    w.reset();
    expect(w.toBuffer().length).toBe(0);
  });

  test('primitive encodings match Kafka', () => {
    expect(bytes((w) => w.uvarint(300)).toString('hex')).toBe('ac02');
    expect(bytes((w) => w.uvarint(0xffffffff)).toString('hex')).toBe('ffffffff0f');
    expect(bytes((w) => w.varint(-1)).toString('hex')).toBe('01');
    expect(bytes((w) => w.varint(-64)).toString('hex')).toBe('7f');
    expect(bytes((w) => w.varlong(-1n)).toString('hex')).toBe('01');
    expect(bytes((w) => w.string('ab')).toString('hex')).toBe('00026162');
    expect(bytes((w) => w.nullableString(null)).toString('hex')).toBe('ffff');
    expect(bytes((w) => w.compactString('ab')).toString('hex')).toBe('036162');
    expect(bytes((w) => w.compactNullableString(null)).toString('hex')).toBe('00');
    expect(bytes((w) => w.nullableBytes(null)).toString('hex')).toBe('ffffffff');
    expect(bytes((w) => w.compactBytes(Buffer.from([7]))).toString('hex')).toBe('0207');
    expect(bytes((w) => w.int64(-2n)).toString('hex')).toBe('fffffffffffffffe');
    expect(bytes((w) => w.string('ü')).toString('hex')).toBe('0002c3bc');
    expect(() => bytes((w) => w.uuid(Buffer.alloc(3)))).toThrow(CodecError);
    expect(() => bytes((w) => w.uvarint(-1))).toThrow(CodecError);
  });

  test('beginSized/endSized moves payloads needing multi-byte lengths', () => {
    for (const n of [0, 1, 127, 128, 300, 20000]) {
      const b = bytes((w) => {
        w.int8(9);
        const p = w.beginSized();
        w.raw(Buffer.alloc(n, 0xab));
        w.endSized(p);
        w.int8(8);
      });
      const r = new Reader(b);
      expect(r.int8()).toBe(9);
      expect(r.uvarint()).toBe(n);
      expect(r.raw(n).every((x) => x === 0xab)).toBe(true);
      expect(r.int8()).toBe(8);
      expect(r.remaining()).toBe(0);
    }
  });
});

describe('Writer.int64', () => {
  test('writes every int64 as Buffer.writeBigInt64BE does, on both sides of its plain-number range (±2^53)', () => {
    const edges = [0n, -1n, 1n, 2n ** 53n - 1n, -(2n ** 53n) + 1n, -(2n ** 53n), 2n ** 53n, 2n ** 63n - 1n, -(2n ** 63n), 1_700_000_000_000n, 0xffffffffn, 0x100000000n, -0x100000000n, -0xffffffffn];
    const check = (v: bigint): void => {
      const want = Buffer.alloc(8);
      want.writeBigInt64BE(v);
      const w = new Writer(8);
      w.int64(v);
      expect(w.toBuffer().toString('hex')).toBe(want.toString('hex'));
    };
    for (const v of edges) check(v);
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => check(v)));
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 54n), max: 2n ** 54n }), (v) => check(v)));
  });
});

describe('Reader', () => {
  test('int64At reads every int64 as Buffer.readBigInt64BE does, on both sides of its one-conversion range (±2^53)', () => {
    const edges = [0n, -1n, 1n, 2n ** 53n - 1n, -(2n ** 53n), 2n ** 53n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 1_700_000_000_000n, 0xffffffffn, -0x100000000n];
    const b = Buffer.alloc(8);
    const check = (v: bigint): void => {
      b.writeBigInt64BE(v);
      expect(int64At(b, 0)).toBe(b.readBigInt64BE(0));
    };
    for (const v of edges) check(v);
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => check(v)));
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 54n), max: 2n ** 54n }), (v) => check(v)));
  });

  test('round-trips every primitive (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          i8: fc.integer({ min: -128, max: 127 }),
          i16: fc.integer({ min: -32768, max: 32767 }),
          u16: fc.integer({ min: 0, max: 65535 }),
          i32: fc.integer(),
          u32: fc.integer({ min: 0, max: 0xffffffff }),
          i64: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
          f64: fc.double({ noNaN: true }),
          uv: fc.integer({ min: 0, max: 0xffffffff }),
          v: fc.integer(),
          vl: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
          s: fc.string({ unit: 'grapheme', maxLength: 30 }),
          ns: fc.option(fc.string({ maxLength: 10 }), { nil: null }),
          b: fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a)),
          bool: fc.boolean(),
        }),
        (x) => {
          const buf = bytes((w) => {
            w.int8(x.i8); w.int16(x.i16); w.uint16(x.u16); w.int32(x.i32); w.uint32(x.u32); w.int64(x.i64);
            w.float64(x.f64); w.uvarint(x.uv); w.varint(x.v); w.varlong(x.vl); w.string(x.s); w.compactString(x.s);
            w.nullableString(x.ns); w.compactNullableString(x.ns); w.bytes(x.b); w.compactBytes(x.b); w.bool(x.bool);
          });
          const r = new Reader(buf);
          expect([r.int8(), r.int16(), r.uint16(), r.int32(), r.uint32(), r.int64()]).toEqual([x.i8, x.i16, x.u16, x.i32, x.u32, x.i64]);
          expect(Object.is(r.float64(), x.f64)).toBe(true);
          expect([r.uvarint(), r.varint(), r.varlong(), r.string(), r.compactString()]).toEqual([x.uv, x.v, x.vl, x.s, x.s]);
          expect([r.nullableString(), r.compactNullableString()]).toEqual([x.ns, x.ns]);
          expect(r.bytes().equals(x.b)).toBe(true);
          expect(r.compactBytes().equals(x.b)).toBe(true);
          expect(r.bool()).toBe(x.bool);
          expect(r.remaining()).toBe(0);
        },
      ),
    );
  });

  test('errors name what was being read', () => {
    expect(() => new Reader(Buffer.alloc(3)).int32('partition index')).toThrow(/truncated input reading partition index: need 4 bytes at offset 0, 3 left/);
    expect(() => new Reader(Buffer.from('ffffffffff', 'hex')).uvarint('tag')).toThrow(/varint longer than 5 bytes reading tag/);
    expect(() => new Reader(Buffer.from('ffffffff1f', 'hex')).uvarint('tag')).toThrow(/varint too long reading tag/);
    expect(() => new Reader(Buffer.from('ffff', 'hex')).string('topic')).toThrow(/non-nullable topic/);
    expect(() => new Reader(Buffer.from('fffe', 'hex')).nullableString('topic')).toThrow(/negative length -2 reading topic/);
    expect(() => new Reader(Buffer.from('00050102', 'hex')).string('host')).toThrow(/truncated input reading host/);
    expect(() => new Reader(Buffer.from('7fffffff', 'hex')).arrayLength('brokers', 4)).toThrow(/array length 2147483647 of brokers exceeds the 0 bytes left/);
    expect(() => new Reader(Buffer.from('80808080', 'hex')).arrayLength('brokers')).toThrow(/negative array length/);
    expect(new Reader(Buffer.from('ffffffff', 'hex')).arrayLength('x')).toBe(-1);
    expect(new Reader(Buffer.from('00', 'hex')).compactArrayLength('x')).toBe(-1);
    expect(() => new Reader(Buffer.from('ffff03', 'hex')).compactString('s')).toThrow(/exceeds 32767/);
  });

  test('honours an end bound inside a larger buffer', () => {
    const r = new Reader(Buffer.from('0000000100000002', 'hex'), 0, 4);
    expect(r.int32()).toBe(1);
    expect(() => r.int32('next')).toThrow(CodecError);
  });

  test('taggedFields keeps raw views', () => {
    const b = Buffer.from('02' + '0102aabb' + '0500', 'hex');
    const m = new Reader(b).taggedFields()!;
    expect([...m.entries()].map(([k, v]) => [k, v.toString('hex')])).toEqual([
      [1, 'aabb'],
      [5, ''],
    ]);
    expect(new Reader(Buffer.from('00', 'hex')).taggedFields()).toBeUndefined();
    expect(() => new Reader(Buffer.from('0101ff', 'hex')).taggedFields()).toThrow(CodecError);
  });
});
