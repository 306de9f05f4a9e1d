// Round-trip and robustness tests for every generated message and every version Kafka 4.3.1
// defines: random messages (respecting which fields exist and are nullable in each version)
// must encode -> decode -> encode to identical bytes, and malformed input must fail with a
// CodecError, never a RangeError, a hang or a huge allocation.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import * as G from './generated/index.js';
import { SCHEMAS, type FieldType, type MessageSchema } from './generated/schema.js';
import { CodecError, Reader } from './reader.js';
import { Writer } from './writer.js';

type AnyMsg = Record<string, unknown>;
const gen = G as unknown as Record<string, (...args: unknown[]) => unknown>;
const decodeOf = (msg: string) => gen[`decode${msg}`] as (r: Reader, v: number) => AnyMsg;
const encodeOf = (msg: string) => gen[`encode${msg}`] as (w: Writer, m: AnyMsg, v: number) => void;
const createOf = (struct: string) => gen[`create${struct}`] as () => AnyMsg;

const inRange = (r: readonly [number, number] | null, v: number) => r !== null && v >= r[0] && v <= r[1];

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function primArb(prim: string): fc.Arbitrary<unknown> {
  switch (prim) {
    case 'int8':
      return fc.integer({ min: -128, max: 127 });
    case 'int16':
      return fc.integer({ min: -32768, max: 32767 });
    case 'uint16':
      return fc.integer({ min: 0, max: 65535 });
    case 'int32':
      return fc.integer();
    case 'uint32':
      return fc.integer({ min: 0, max: 0xffffffff });
    case 'int64':
      return fc.bigInt({ min: INT64_MIN, max: INT64_MAX });
    case 'float64':
      return fc.double({ noNaN: true });
    case 'bool':
      return fc.boolean();
    case 'string':
      return fc.string({ unit: 'grapheme', maxLength: 12 });
    case 'bytes':
    case 'records':
      return fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
    case 'uuid':
      return fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
    default:
      throw new Error(`no arbitrary for ${prim}`);
  }
}

function typeArb(schema: MessageSchema, t: FieldType, v: number, depth: number): fc.Arbitrary<unknown> {
  if (typeof t === 'string') return primArb(t);
  if ('struct' in t) return structArb(schema, t.struct, v, depth + 1);
  return fc.array(typeArb(schema, t.array, v, depth), { maxLength: depth > 1 ? 1 : 3 });
}

function unknownTagsArb(known: Set<number>): fc.Arbitrary<Map<number, Buffer> | undefined> {
  return fc
    .uniqueArray(fc.integer({ min: 0, max: 300 }).filter((t) => !known.has(t)), { maxLength: 3 })
    .chain((tags) => fc.tuple(...tags.map((t) => fc.tuple(fc.constant(t), fc.uint8Array({ maxLength: 140 })))))
    .map((pairs) => {
      if (pairs.length === 0) return undefined;
      pairs.sort((a, b) => a[0] - b[0]);
      return new Map(pairs.map(([t, b]) => [t, Buffer.from(b)]));
    });
}

function structArb(schema: MessageSchema, name: string, v: number, depth = 0): fc.Arbitrary<AnyMsg> {
  const fields = schema.structs[name]!;
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  const known = new Set<number>();
  for (const f of fields) {
    if (!inRange(f.versions, v)) continue; // absent in this version: the decoder fills the default
    if (f.tag !== null) known.add(f.tag);
    let a = typeArb(schema, f.type, v, depth);
    if (inRange(f.nullable, v) || f.type === 'records') a = fc.option(a, { nil: null, freq: 4 });
    parts[f.prop] = a;
  }
  const flexible = schema.flexibleMin !== null && v >= schema.flexibleMin;
  if (flexible) parts._tagged = unknownTagsArb(known);
  return fc.record(parts).map((r) => ({ ...createOf(name)(), ...r }));
}

function encode(msg: string, m: AnyMsg, v: number): Buffer {
  const w = new Writer(8);
  encodeOf(msg)(w, m, v);
  return Buffer.from(w.toBuffer());
}

function decode(msg: string, b: Buffer, v: number): AnyMsg {
  const r = new Reader(b);
  const m = decodeOf(msg)(r, v);
  expect(r.offset).toBe(b.length);
  return m;
}

function expectCodecErrorOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof CodecError)) throw e;
  }
}

const cases: [string, number][] = [];
for (const [msg, s] of Object.entries(SCHEMAS)) for (let v = s.valid[0]; v <= s.valid[1]; v++) cases.push([msg, v]);

describe('generated messages: every version round-trips', () => {
  test.each(cases)('%s v%i', (msg, v) => {
    const schema = SCHEMAS[msg]!;
    const arb = structArb(schema, msg, v);
    // the all-defaults message must round-trip too
    const dflt = createOf(msg)();
    const d1 = encode(msg, dflt, v);
    expect(encode(msg, decode(msg, d1, v), v).equals(d1)).toBe(true);
    fc.assert(
      fc.property(arb, (m) => {
        const b1 = encode(msg, m, v);
        const m2 = decode(msg, b1, v);
        expect(m2).toEqual(m);
        const b2 = encode(msg, m2, v);
        expect(b2.toString('hex')).toBe(b1.toString('hex'));
      }),
      { numRuns: 40, seed: 42 + v },
    );
  });
});

describe('generated messages: malformed input throws CodecError', () => {
  test.each(cases)('%s v%i truncated and mutated', (msg, v) => {
    const schema = SCHEMAS[msg]!;
    const samples = fc.sample(structArb(schema, msg, v), { numRuns: 4, seed: 7 });
    for (const m of samples) {
      const b = encode(msg, m, v);
      // every strict prefix is missing bytes the full decode needs
      for (let n = 0; n < b.length; n++) {
        expect(() => decodeOf(msg)(new Reader(b.subarray(0, n)), v)).toThrow(CodecError);
      }
      // flipping bytes may still decode, but must never fail with anything else
      for (let i = 0; i < b.length; i++) {
        for (const x of [0xff, 0x80, 0x01]) {
          const c = Buffer.from(b);
          c[i]! ^= x;
          expectCodecErrorOrOk(() => decodeOf(msg)(new Reader(c), v));
        }
      }
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expectCodecErrorOrOk(() => decodeOf(msg)(new Reader(Buffer.from(bytes)), v));
      }),
      { numRuns: 50, seed: 3 },
    );
  });

  test('huge array counts fail fast without allocating', () => {
    const w = new Writer();
    w.nullableString(null); // transactional id
    w.int16(-1);
    w.int32(1000);
    w.int32(0x7fffffff); // topic count
    const t0 = Date.now();
    expect(() => G.decodeProduceRequest(new Reader(w.toBuffer()), 3)).toThrow(/array length 2147483647 of ProduceRequest.topicData exceeds/);
    const c = new Writer();
    c.compactNullableString(null);
    c.int16(-1);
    c.int32(1000);
    c.uvarint(0xffffffff); // compact count
    expect(() => G.decodeProduceRequest(new Reader(c.toBuffer()), 9)).toThrow(CodecError);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  test('negative lengths and lengths past the end name the field', () => {
    const w = new Writer();
    w.int16(-5); // transactional id length
    expect(() => G.decodeProduceRequest(new Reader(w.toBuffer()), 3)).toThrow(/negative length -5 reading ProduceRequest.transactionalId/);
    const p = new Writer();
    p.int32(1); // brokers
    p.int32(1); // node id
    p.int16(50); // host length, but nothing follows
    expect(() => G.decodeMetadataResponse(new Reader(p.toBuffer()), 0)).toThrow(/truncated input reading MetadataResponseBroker.host/);
    const r = new Writer();
    r.nullableString(null);
    r.int16(1);
    r.int32(1);
    r.int32(1);
    r.string('t');
    r.int32(1);
    r.int32(0);
    r.int32(-7); // records length
    expect(() => G.decodeProduceRequest(new Reader(r.toBuffer()), 3)).toThrow(/negative length -7 reading PartitionProduceData.records/);
  });

  test('versions outside the spec are rejected', () => {
    expect(() => G.decodeProduceRequest(new Reader(Buffer.alloc(10)), 2)).toThrow(/ProduceRequest version 2 is outside the supported range 3-13/);
    expect(() => G.encodeProduceRequest(new Writer(), G.createProduceRequest(), 14)).toThrow(CodecError);
  });

  test('encoding null into a version where the field is not nullable throws', () => {
    const m = G.createMetadataRequest();
    m.topics = null;
    expect(() => G.encodeMetadataRequest(new Writer(), m, 0)).toThrow(/MetadataRequest.topics is null but not nullable in version 0/);
    const w = new Writer();
    G.encodeMetadataRequest(w, m, 1);
    expect(w.toBuffer().toString('hex')).toBe('ffffffff'); // AllowAutoTopicCreation starts at v4
  });
});

describe('tagged fields', () => {
  test('known tags decode by tag; unknown tags are kept and re-emitted in tag order', () => {
    const m = G.createProduceResponse();
    const p = G.createPartitionProduceResponse();
    p.index = 2;
    p.errorCode = 6;
    p.currentLeader = { leaderId: 3, leaderEpoch: 9, _tagged: undefined };
    p._tagged = new Map([[7, Buffer.from('xy')]]);
    m.responses = [{ ...G.createTopicProduceResponse(), name: 'orders', partitionResponses: [p] }];
    m.nodeEndpoints = [{ nodeId: 3, host: 'b3.kafka', port: 9092, rack: null, _tagged: undefined }];
    m._tagged = new Map([
      [9, Buffer.from([1])],
      [1, Buffer.from([2, 3])],
    ]);
    const b = encode('ProduceResponse', m as unknown as AnyMsg, 10);
    const back = G.decodeProduceResponse(new Reader(b), 10);
    expect(back.nodeEndpoints).toEqual(m.nodeEndpoints);
    expect(back.responses[0]!.partitionResponses[0]!.currentLeader).toMatchObject({ leaderId: 3, leaderEpoch: 9 });
    expect([...back._tagged!.keys()]).toEqual([1, 9]);
    expect(encode('ProduceResponse', back as unknown as AnyMsg, 10).equals(b)).toBe(true);
    // the top-level tag section is written in ascending order: 0 (known), 1, 9 (unknown)
    expect(b.subarray(b.length - 7).toString('hex')).toBe('01020203090101');
  });

  test('a tag known from v10 is kept raw at v9', () => {
    const w = new Writer();
    w.uvarint(1); // no topics
    w.int32(0); // throttle
    w.uvarint(1); // one tagged field
    w.uvarint(0);
    w.uvarint(2);
    w.raw(Buffer.from([0xaa, 0xbb]));
    const b = Buffer.from(w.toBuffer());
    const m = G.decodeProduceResponse(new Reader(b), 9);
    expect(m.nodeEndpoints).toEqual([]);
    expect(m._tagged!.get(0)).toEqual(Buffer.from([0xaa, 0xbb]));
    expect(encode('ProduceResponse', m as unknown as AnyMsg, 9).equals(b)).toBe(true);
  });

  test('a known tagged field whose payload does not match its size is rejected', () => {
    const w = new Writer();
    w.uvarint(1);
    w.int32(0);
    w.uvarint(1);
    w.uvarint(0); // NodeEndpoints
    w.uvarint(3); // claims 3 bytes, but an empty compact array is 1 byte
    w.raw(Buffer.from([1, 0, 0]));
    expect(() => G.decodeProduceResponse(new Reader(w.toBuffer()), 10)).toThrow(/ProduceResponse.nodeEndpoints \(tag 0\)/);
  });

  test('large tagged payloads get multi-byte size prefixes', () => {
    const m = G.createProduceResponse();
    m.nodeEndpoints = Array.from({ length: 20 }, (_, i) => ({ nodeId: i, host: `broker-${i}.example.internal`, port: 9092, rack: 'r', _tagged: undefined }));
    const b = encode('ProduceResponse', m as unknown as AnyMsg, 12);
    expect(G.decodeProduceResponse(new Reader(b), 12).nodeEndpoints).toEqual(m.nodeEndpoints);
  });
});

describe('defaults make cross-version encoding work', () => {
  test('Produce v13 (topic ids) decodes with default name and re-encodes at v13', () => {
    const m = G.createProduceRequest();
    m.acks = -1;
    m.timeoutMs = 30000;
    const id = Buffer.alloc(16, 7);
    m.topicData = [{ name: '', topicId: id, partitionData: [{ index: 0, records: Buffer.from('abc'), _tagged: undefined }], _tagged: undefined }];
    const b = encode('ProduceRequest', m as unknown as AnyMsg, 13);
    const back = G.decodeProduceRequest(new Reader(b), 13);
    expect(back.topicData[0]!.name).toBe('');
    expect(back.topicData[0]!.topicId.equals(id)).toBe(true);
  });

  test('a v3 response re-encodes at v11 with defaults for newer fields', () => {
    const m = G.createProduceResponse();
    m.responses = [{ ...G.createTopicProduceResponse(), name: 't', partitionResponses: [G.createPartitionProduceResponse()] }];
    const v3 = G.decodeProduceResponse(new Reader(encode('ProduceResponse', m as unknown as AnyMsg, 3)), 3);
    const p = v3.responses[0]!.partitionResponses[0]!;
    expect(p.logStartOffset).toBe(-1n);
    expect(p.recordErrors).toEqual([]);
    expect(p.errorMessage).toBeNull();
    expect(p.currentLeader).toMatchObject({ leaderId: -1, leaderEpoch: -1 });
    const v11 = encode('ProduceResponse', v3 as unknown as AnyMsg, 11);
    expect(G.decodeProduceResponse(new Reader(v11), 11).responses[0]!.name).toBe('t');
  });

  test('records decode as a zero-copy view', () => {
    const m = G.createProduceRequest();
    m.topicData = [{ ...G.createTopicProduceData(), name: 't', partitionData: [{ index: 1, records: Buffer.from('0123456789'), _tagged: undefined }] }];
    const b = encode('ProduceRequest', m as unknown as AnyMsg, 9);
    const rec = G.decodeProduceRequest(new Reader(b), 9).topicData[0]!.partitionData[0]!.records!;
    expect(rec.buffer).toBe(b.buffer);
    rec[0] = 0x41;
    expect(b.includes(Buffer.from('A123456789'))).toBe(true);
  });
});
