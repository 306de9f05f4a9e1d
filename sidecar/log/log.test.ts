import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from './log.js';

/** Lines written by a logger, parsed, without their time. */
function capture(make: (write: (line: string) => void) => Logger): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: make((l) => lines.push(l.replace(/"time":\d+,/, ''))), lines };
}

const base = { component: 'idempo-sidecar' };
const ours = (level: 'debug' | 'info') => capture((write) => createLogger({ level, base, write }));
// pino as the sidecar configured it before: the lines must stay byte for byte the same.
const theirs = (level: 'debug' | 'info') =>
  capture((write) => pino({ level, base, redact: { paths: ['password', '*.password', 'sasl', '*.sasl', 'key', '*.key'], censor: '[redacted]' } }, { write }) as Logger);

describe('sidecar log', () => {
  it("writes pino's lines: level numbers, bindings, fields, message, errors, redaction", () => {
    const a = ours('info');
    const b = theirs('info');
    for (const { log } of [a, b]) {
      log.info('idempo-sidecar started');
      log.warn({ err: 'connect ECONNREFUSED', retryInMs: 200 }, 'cannot fetch upstream metadata yet');
      log.error({ op: 'append', file: '/x/journal', n: 3, ok: true, list: [1, 'two'], nested: { a: 1 } }, 'quote " and \\ and\nnewline');
      log.debug({ hidden: true }, 'below the level');
      log.info({ noMessage: 1 });
      log.info({ password: 'p', sasl: { mechanism: 'PLAIN', password: 'p' }, tls: { key: 'k', ca: 'c' } }, 'secrets');
      const conn = log.child({ conn: 7, remote: '127.0.0.1:5000' });
      conn.warn({ reason: 'eof' }, 'closing client connection: eof');
      conn.child({ broker: 1 }).error({ undefinedIsDropped: undefined }, 'deeper');
      const err = Object.assign(new TypeError('bad'), { code: 'E_BAD' });
      log.error({ err, target: 'x' }, 'listener error');
    }
    expect(a.lines).toEqual(b.lines);
    expect(a.lines).toHaveLength(8);
    expect(JSON.parse(a.lines[4])).toMatchObject({ password: '[redacted]', sasl: '[redacted]', tls: { key: '[redacted]', ca: 'c' } });
  });

  it('a level set on the root applies to every child made before', () => {
    const { log, lines } = ours('info');
    const child = log.child({ conn: 1 });
    child.debug('hidden');
    log.level = 'debug';
    expect(log.level).toBe('debug');
    child.debug('shown');
    log.level = 'error';
    child.warn('hidden too');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
    expect(() => (log.level = 'loud')).toThrow(/unknown log level/);
  });

  it('never throws on what it cannot serialize', () => {
    const { log, lines } = ours('info');
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    log.info({ cycle, big: 12345678901234567890n, fn: () => 1 }, 'odd fields');
    expect(JSON.parse(lines[0])).toEqual({ level: 30, component: 'idempo-sidecar', cycle: '[unserializable]', big: '12345678901234567890', msg: 'odd fields' });
  });
});
