// The sidecar's command line: DESIGN.md's flags, IDEMPO_* variables, and the rules it shares
// with the operator (api/flags.ts).
import { describe, expect, it } from 'vitest';
import { FlagError } from '../../api/flags.js';
import { parseCli } from './cli.js';

describe('parseCli', () => {
  it('has the documented defaults', () => {
    const c = parseCli(['--upstream', 'k:9092'], {});
    expect(c).toMatchObject({ upstream: [{ host: 'k', port: 9092 }], listen: { host: '127.0.0.1', port: 19092 }, metricsListen: { host: '127.0.0.1', port: 9464 }, mode: 'upgrade', modeExplicit: false, logLevel: 'info', logLevelExplicit: false, tls: undefined });
  });

  it('reads IDEMPO_* variables; flags win', () => {
    const c = parseCli(['--mode', 'observe'], { IDEMPO_UPSTREAM: 'a:1,[::1]:2', IDEMPO_MODE: 'enforce', IDEMPO_LOG_LEVEL: 'debug', IDEMPO_UPSTREAM_TLS: 'yes' });
    expect(c.upstream).toEqual([{ host: 'a', port: 1 }, { host: '::1', port: 2 }]);
    expect(c).toMatchObject({ mode: 'observe', modeExplicit: true, logLevel: 'debug', logLevelExplicit: true });
    expect(c.tls).toBeDefined();
  });

  it('--state-dir and IDEMPO_STATE_DIR (flag wins); none by default', () => {
    expect(parseCli([], {}).stateDir).toBeUndefined();
    expect(parseCli([], { IDEMPO_STATE_DIR: '/var/lib/idempo' }).stateDir).toBe('/var/lib/idempo');
    expect(parseCli(['--state-dir', '/tmp/s'], { IDEMPO_STATE_DIR: '/var/lib/idempo' }).stateDir).toBe('/tmp/s');
  });

  it('--log-level given explicitly is marked so, even when it is the default value', () => {
    expect(parseCli(['--log-level', 'info'], {}).logLevelExplicit).toBe(true);
  });

  const bad: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [[], { IDEMPO_UPSTREAM_TLS: 'ture' }, /--upstream-tls: IDEMPO_UPSTREAM_TLS must be true or false, got "ture"/],
    [['--mode', 'fast'], {}, /--mode: expected one of observe, enforce, upgrade/],
    [['--listen', 'nope'], {}, /--listen: expected HOST:PORT/],
    [['--log-level', 'loud'], {}, /--log-level/],
    [['--max-frame-bytes', '1'], {}, /--max-frame-bytes/],
    [['--upstream-cert-file', 'c'], {}, /--upstream-cert-file and --upstream-key-file/],
    [['--bogus'], {}, /bogus/],
  ];
  for (const [argv, env, re] of bad)
    it(`rejects ${JSON.stringify([argv, env])} with one line naming the flag`, () => {
      try {
        parseCli(argv, env);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(FlagError);
        expect((e as Error).message).toMatch(re);
        expect((e as Error).message).not.toContain('\n');
      }
    });
});
