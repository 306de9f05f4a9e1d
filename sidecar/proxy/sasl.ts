// SASL for the sidecar's OWN broker connections (metadata, InitProducerId, upgrade-mode
// sends). Client connections carry their own SASL exchange through the proxy untouched;
// these credentials are only the sidecar's, read from a file and never logged.
// PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, KIP-84), over SaslHandshake v1 +
// SaslAuthenticate v1.
import { requireCjs } from '../../api/require-cjs.js';

// node:crypto is loaded when a SASL exchange runs, not at start-up (most sidecars never use it).
const crypto = (): typeof import('node:crypto') => requireCjs('node:crypto') as typeof import('node:crypto');
import type { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';

export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
export const SASL_MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

export interface SaslCredentials {
  mechanism: SaslMechanism;
  username: string;
  password: string;
}

type Send = (apiKey: number, version: number, encode: (w: Writer) => void) => Promise<Reader>;

const SASL_HANDSHAKE = 17;
const SASL_AUTHENTICATE = 36;

export class SaslError extends Error {}

/** `nonce` is for tests (RFC 7677's vector); leave it out. */
export async function authenticate(send: Send, creds: SaslCredentials, nonce = crypto().randomBytes(24).toString('base64url')): Promise<void> {
  const hs = await send(SASL_HANDSHAKE, 1, (w) => w.string(creds.mechanism));
  const hsError = hs.int16();
  if (hsError !== 0) {
    const n = hs.int32();
    const offered: string[] = [];
    for (let i = 0; i < n; i++) offered.push(hs.string());
    throw new SaslError(`broker refused SASL mechanism ${creds.mechanism} (error ${hsError}; it offers ${offered.join(', ') || 'none'})`);
  }
  const step = async (bytes: Buffer): Promise<Buffer> => {
    const r = await send(SASL_AUTHENTICATE, 1, (w) => w.bytes(bytes));
    const code = r.int16();
    const message = r.nullableString();
    const out = r.bytes();
    if (code !== 0) throw new SaslError(`SASL authentication failed (error ${code}${message ? `: ${message}` : ''})`);
    return out;
  };
  if (creds.mechanism === 'PLAIN') {
    await step(Buffer.from(`\0${creds.username}\0${creds.password}`, 'utf8'));
    return;
  }
  await scram(step, creds, nonce);
}

async function scram(step: (b: Buffer) => Promise<Buffer>, creds: SaslCredentials, nonce: string): Promise<void> {
  const hash = creds.mechanism === 'SCRAM-SHA-256' ? 'sha256' : 'sha512';
  const keyLen = hash === 'sha256' ? 32 : 64;
  const user = creds.username.replace(/=/g, '=3D').replace(/,/g, '=2C');
  const clientFirstBare = `n=${user},r=${nonce}`;
  const serverFirst = (await step(Buffer.from(`n,,${clientFirstBare}`))).toString('utf8');
  const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as [string, string]));
  const serverNonce = attrs.get('r') ?? '';
  const salt = Buffer.from(attrs.get('s') ?? '', 'base64');
  const iterations = Number(attrs.get('i'));
  if (!serverNonce.startsWith(nonce) || !Number.isInteger(iterations) || iterations < 1) throw new SaslError('SCRAM: malformed server-first message');
  const { createHash, createHmac, pbkdf2Sync, timingSafeEqual } = crypto();
  const salted = pbkdf2Sync(creds.password.normalize('NFKC'), salt, iterations, keyLen, hash);
  const hmac = (key: Buffer, text: string): Buffer => createHmac(hash, key).update(text).digest();
  const clientKey = hmac(salted, 'Client Key');
  const storedKey = createHash(hash).update(clientKey).digest();
  const clientFinalBare = `c=biws,r=${serverNonce}`;
  const authMessage = `${clientFirstBare},${serverFirst},${clientFinalBare}`;
  const signature = hmac(storedKey, authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
  const serverFinal = (await step(Buffer.from(`${clientFinalBare},p=${proof.toString('base64')}`))).toString('utf8');
  const expected = hmac(hmac(salted, 'Server Key'), authMessage);
  const got = Buffer.from(serverFinal.startsWith('v=') ? serverFinal.slice(2) : '', 'base64');
  // The broker proves it knows the password too; a mismatch means we reached an impostor.
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw new SaslError('SCRAM: the broker failed to prove the server signature');
}
