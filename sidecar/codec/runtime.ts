// Small helpers shared by the generated codecs (kept out of the generated files so they stay short).

import { CodecError } from './reader.js';

/** Kafka's Uuid.ZERO_UUID; shared default, never mutate. */
export const ZERO_UUID: Buffer = Buffer.alloc(16);
/** Shared empty default for bytes fields; never mutate. */
export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);

export function isZeroUuid(b: Buffer): boolean {
  for (let i = 0; i < 16; i++) if (b[i] !== 0) return false;
  return true;
}

export function checkVersion(name: string, version: number, min: number, max: number): void {
  if (!(version >= min && version <= max) || !Number.isInteger(version)) {
    throw new CodecError(`${name} version ${version} is outside the supported range ${min}-${max}`);
  }
}

/** Field is null in a version where Kafka does not allow null. */
export function nullError(what: string, version: number): CodecError {
  return new CodecError(`${what} is null but not nullable in version ${version}`);
}
