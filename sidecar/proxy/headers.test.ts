import { describe, expect, it } from 'vitest';
import { Writer } from '../codec/writer.js';
import { CodecError } from '../codec/reader.js';
import { parseRequestHeader, writeRequestHeader } from './headers.js';

function header(clientId: string | null, headerVersion: number): Buffer {
  const w = new Writer(64);
  if (clientId === null) {
    w.int16(0);
    w.int16(9);
    w.int32(5);
    w.int16(-1);
    if (headerVersion >= 2) w.uvarint(0);
  } else writeRequestHeader(w, 0, 9, 5, clientId, headerVersion);
  w.int32(0x0b0d0b0d); // a body
  return Buffer.from(w.toBuffer());
}

describe('parseRequestHeader with the previous client id', () => {
  it('reads what the bytes say whatever the previous id was', () => {
    for (const hv of [1, 2]) {
      for (const [previous, now] of [
        ['producer-1', 'producer-1'],
        ['producer-1', 'producer-2'], // same length, other bytes
        ['producer-1', 'producer-10'],
        ['producer-1', ''],
        ['', 'producer-1'],
        ['producer-1', null],
        [null, 'producer-1'],
        ['prödücer-1', 'prödücer-1'], // non-ASCII: decoded as before
        ['prodücer-1', 'prodÃ¼cer-1'],
      ] as Array<[string | null, string | null]>) {
        const frame = header(now, hv);
        const h = parseRequestHeader(frame, hv, previous);
        expect(h.clientId, `${previous} -> ${now}`).toBe(now);
        expect(frame.readInt32BE(h.bodyOffset)).toBe(0x0b0d0b0d);
        expect(h).toEqual(parseRequestHeader(frame, hv));
      }
    }
  });

  it('a truncated client id is a CodecError, with or without a previous id', () => {
    const frame = header('producer-1', 1).subarray(0, 14);
    expect(() => parseRequestHeader(frame, 1, 'producer-1')).toThrow(CodecError);
    expect(() => parseRequestHeader(frame, 1)).toThrow(CodecError);
  });
});
