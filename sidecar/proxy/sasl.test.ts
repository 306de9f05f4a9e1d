import { describe, expect, it } from 'vitest';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { authenticate } from './sasl.js';

/** A scripted broker: records what the client sent and answers from a list. */
function scripted(serverMessages: string[]) {
  const sent: string[] = [];
  let i = 0;
  const send = async (apiKey: number, _v: number, encode: (w: Writer) => void): Promise<Reader> => {
    const w = new Writer();
    encode(w);
    const req = new Reader(Buffer.from(w.toBuffer()));
    const out = new Writer();
    if (apiKey === 17) {
      sent.push(`handshake:${req.string()}`);
      out.int16(0);
      out.int32(0);
    } else {
      sent.push(req.bytes().toString('utf8'));
      out.int16(0);
      out.nullableString(null);
      out.bytes(Buffer.from(serverMessages[i++] ?? ''));
      out.int64(0n);
    }
    return new Reader(Buffer.from(out.toBuffer()));
  };
  return { send, sent };
}

describe('SASL', () => {
  it('PLAIN sends authzid, user and password', async () => {
    const b = scripted(['']);
    await authenticate(b.send, { mechanism: 'PLAIN', username: 'alice', password: 's3cret' });
    expect(b.sent).toEqual(['handshake:PLAIN', '\0alice\0s3cret']);
  });

  it('SCRAM-SHA-256 matches the RFC 7677 example exchange', async () => {
    const b = scripted([
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
      'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    ]);
    await authenticate(b.send, { mechanism: 'SCRAM-SHA-256', username: 'user', password: 'pencil' }, 'rOprNGfwEbeRWgbNEkqO');
    expect(b.sent).toEqual([
      'handshake:SCRAM-SHA-256',
      'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    ]);
  });

  it('SCRAM refuses a broker that cannot prove the server signature', async () => {
    const b = scripted(['r=abc123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', 'v=AAAA']);
    await expect(authenticate(b.send, { mechanism: 'SCRAM-SHA-512', username: 'u', password: 'p' }, 'abc')).rejects.toThrow(/server signature/);
  });
});
