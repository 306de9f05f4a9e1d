// Cross-check against Kafka's own Java message classes: fixtures/java-messages.json holds bytes
// written by kafka-clients 4.3.1 and Kafka's JSON rendering of the same messages
// (regenerate with scripts/codegen/gen-java-fixtures.sh). Our decoder must read every field
// Kafka wrote, and our encoder must reproduce Kafka's bytes exactly.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import * as G from './generated/index.js';
import { SCHEMAS, type FieldType } from './generated/schema.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

interface Fixture {
  message: string;
  version: number;
  name?: string;
  hex: string;
  json?: Record<string, unknown>;
}

const fixtures: Fixture[] = JSON.parse(readFileSync(new URL('./fixtures/java-messages.json', import.meta.url), 'utf8'));
const messages = fixtures.filter((f) => f.message !== 'RecordBatch');

type Obj = Record<string, unknown>;
const gen = G as unknown as Record<string, (...args: unknown[]) => unknown>;

/** Kafka's Uuid.toString: URL-safe base64 without padding. */
const uuidString = (b: Buffer) => b.toString('base64url');

/** Our value rendered the way Kafka's JSON converters render it. */
function toKafkaJson(msg: string, t: FieldType, value: unknown, v: number): unknown {
  if (value === null) return null;
  if (typeof t === 'string') {
    if (t === 'int64') return Number(value as bigint);
    if (t === 'uuid') return uuidString(value as Buffer);
    if (t === 'bytes') return (value as Buffer).toString('base64');
    return value;
  }
  if ('array' in t) return (value as unknown[]).map((e) => toKafkaJson(msg, t.array, e, v));
  return structJson(msg, t.struct, value as Obj, v);
}

function structJson(msg: string, struct: string, m: Obj, v: number, kafka?: Obj): Obj {
  const out: Obj = {};
  const dflt = (gen[`create${struct}`] as () => Obj)();
  for (const f of SCHEMAS[msg]!.structs[struct]!) {
    if (v < f.versions[0] || v > f.versions[1]) continue;
    if (f.type === 'records') {
      const rec = m[f.prop] as Buffer | null;
      if (rec !== null) out.recordsSizeInBytes = rec.length;
      continue;
    }
    // Kafka leaves out tagged fields that hold their default; so must we on the wire
    if (f.tag !== null && JSON.stringify(toKafkaJson(msg, f.type, m[f.prop], v)) === JSON.stringify(toKafkaJson(msg, f.type, dflt[f.prop], v))) {
      if (kafka && f.prop in kafka) out[f.prop] = toKafkaJson(msg, f.type, m[f.prop], v);
      continue;
    }
    out[f.prop] = toKafkaJson(msg, f.type, m[f.prop], v);
  }
  return out;
}

/** Kafka's JSON with nested structs normalised the same way (tagged defaults dropped). */
function normaliseKafka(msg: string, struct: string, k: Obj, v: number): Obj {
  const out: Obj = {};
  for (const f of SCHEMAS[msg]!.structs[struct]!) {
    if (!(f.prop in k)) continue;
    const t = f.type;
    const val = k[f.prop];
    if (val !== null && typeof t === 'object' && 'struct' in t) out[f.prop] = normaliseKafka(msg, t.struct, val as Obj, v);
    else if (val !== null && typeof t === 'object' && 'array' in t && typeof t.array === 'object' && 'struct' in t.array) {
      const inner = t.array.struct;
      out[f.prop] = (val as Obj[]).map((e) => normaliseKafka(msg, inner, e, v));
    } else out[f.prop] = val;
  }
  if ('recordsSizeInBytes' in k) out.recordsSizeInBytes = k.recordsSizeInBytes;
  return out;
}

describe('Kafka Java fixtures', () => {
  test('cover every generated message', () => {
    const seen = new Set(messages.map((f) => f.message));
    for (const m of Object.keys(SCHEMAS)) expect(seen.has(m), m).toBe(true);
    expect(messages.length).toBeGreaterThan(100);
  });

  test.each(messages.map((f, i) => [`${f.message} v${f.version} #${i}`, f] as const))('%s', (_label, f) => {
    const bytes = Buffer.from(f.hex, 'hex');
    const r = new Reader(bytes);
    const m = (gen[`decode${f.message}`] as (r: Reader, v: number) => Obj)(r, f.version);
    expect(r.offset).toBe(bytes.length);

    // every field Kafka wrote, with the values Kafka meant
    const kafka = f.json!;
    for (const key of Object.keys(kafka)) {
      const known = SCHEMAS[f.message]!.structs[f.message]!.some((x) => x.prop === key);
      expect(known, `Kafka JSON field ${key} unknown to our schema`).toBe(true);
    }
    expect(structJson(f.message, f.message, m, f.version)).toEqual(normaliseKafka(f.message, f.message, kafka, f.version));

    // and byte-identical re-encoding (unknown tagged fields included)
    const w = new Writer(16);
    (gen[`encode${f.message}`] as (w: Writer, m: Obj, v: number) => void)(w, m, f.version);
    expect(w.toBuffer().toString('hex')).toBe(f.hex);
  });

  test('unknown tagged fields written by Java are kept raw', () => {
    const f = messages.find((x) => x.message === 'ProduceResponse' && x.version === 12)!;
    const m = G.decodeProduceResponse(new Reader(Buffer.from(f.hex, 'hex')), 12);
    expect(m._tagged?.get(3)).toEqual(Buffer.from([1, 2, 3]));
    expect(m.nodeEndpoints).toEqual([{ nodeId: 2, host: 'b2.kafka.svc', port: 9093, rack: 'rack-a', _tagged: undefined }]);
    expect(m.responses[0]!.partitionResponses[1]!.currentLeader).toEqual({ leaderId: 2, leaderEpoch: 7, _tagged: undefined });
    const h = messages.find((x) => x.message === 'RequestHeader' && x.version === 2)!;
    const hd = G.decodeRequestHeader(new Reader(Buffer.from(h.hex, 'hex')), 2);
    expect(hd.clientId).toBe('client-ü');
    expect(hd._tagged?.get(5)).toEqual(Buffer.from([9, 8]));
  });

  test('Produce v13 carries the topic id, not the name', () => {
    const f = messages.find((x) => x.message === 'ProduceRequest' && x.version === 13)!;
    const m = G.decodeProduceRequest(new Reader(Buffer.from(f.hex, 'hex')), 13);
    expect(m.topicData[0]!.name).toBe('');
    expect(uuidString(m.topicData[0]!.topicId)).toBe((f.json!.topicData as Obj[])[0]!.topicId);
  });
});
