// Request/response headers. Pass-through frames only need the fixed prefix
// (api key, version, correlation id at offsets 0..8), so the full header is parsed only
// for the APIs the sidecar decodes.
import { Reader, CodecError } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
  /** Offset in the frame where the request body starts. */
  bodyOffset: number;
}

export const REQUEST_PREFIX = 8;

/** Reads the fixed prefix every request has. */
export function peekRequest(frame: Buffer): { apiKey: number; apiVersion: number; correlationId: number } {
  if (frame.length < REQUEST_PREFIX) throw new CodecError(`request frame of ${frame.length} bytes is shorter than a request header`);
  return { apiKey: frame.readInt16BE(0), apiVersion: frame.readInt16BE(2), correlationId: frame.readInt32BE(4) };
}

/**
 * Parses a v1 (headerVersion 1) or v2 (flexible, tagged fields) request header. `lastClientId`:
 * the client id of the connection's previous request, returned as is when the bytes spell it
 * (a client sends one id on every request: no string decoded per request).
 */
export function parseRequestHeader(frame: Buffer, headerVersion: number, lastClientId?: string | null): RequestHeader {
  const r = new Reader(frame);
  const apiKey = r.int16('request api key');
  const apiVersion = r.int16('request api version');
  const correlationId = r.int32('correlation id');
  // client_id stays a classic (non-compact) nullable string even in header v2.
  let clientId: string | null = null;
  if (headerVersion >= 1) {
    if (typeof lastClientId === 'string' && spells(frame, r.offset, lastClientId)) {
      clientId = lastClientId;
      r.skipString('client id', false, true);
    } else clientId = r.nullableString('client id');
  }
  if (headerVersion >= 2) r.taggedFields('request header tagged fields');
  return { apiKey, apiVersion, correlationId, clientId, bodyOffset: r.offset };
}

/** Whether the int16-length string at `at` is the ASCII string `s` (false for any other s). */
function spells(frame: Buffer, at: number, s: string): boolean {
  if (at + 2 + s.length > frame.length || frame.readInt16BE(at) !== s.length) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80 || frame[at + 2 + i] !== c) return false;
  }
  return true;
}

/** Offset of the response body: header v0 is the correlation id, v1 adds tagged fields. */
export function responseBodyOffset(frame: Buffer, headerVersion: number): number {
  const r = new Reader(frame);
  r.int32('response correlation id');
  if (headerVersion >= 1) r.taggedFields('response header tagged fields');
  return r.offset;
}

/** Builds a request header for the sidecar's own requests. */
export function writeRequestHeader(w: Writer, apiKey: number, apiVersion: number, correlationId: number, clientId: string, headerVersion: number): void {
  w.int16(apiKey);
  w.int16(apiVersion);
  w.int32(correlationId);
  if (headerVersion >= 1) w.nullableString(clientId);
  if (headerVersion >= 2) w.uvarint(0);
}

/** Builds a response header (correlation id, plus an empty tag section for v1). */
export function writeResponseHeader(w: Writer, correlationId: number, headerVersion: number): void {
  w.int32(correlationId);
  if (headerVersion >= 1) w.uvarint(0);
}
