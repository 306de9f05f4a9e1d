import { describe, expect, it } from 'vitest';
import { FlagError } from '../api/flags.js';
import { parseConfig, type OperatorConfig } from './config.js';

const noFile = () => {
  throw new Error('ENOENT');
};
const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseConfig(argv, env, noFile) as OperatorConfig;

describe('parseConfig', () => {
  it('has defaults that work in a cluster', () => {
    const c = parse([]);
    expect(c.namespace).toBe('idempo-system');
    expect(c.metricsListen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.webhookListen).toEqual({ host: '0.0.0.0', port: 9443 });
    expect(c.leaderElect).toBe(false);
    expect(c.leaseDurationMs).toBe(15_000);
    expect(c.leaseRenewMs).toBe(2_000);
  });
  it('reads the service account namespace in a pod', () => {
    expect((parseConfig([], {}, () => 'shop\n') as OperatorConfig).namespace).toBe('shop');
  });
  it('parses the documented flags', () => {
    const c = parse(['--kubeconfig', '/k', '--namespace', 'ops', '--metrics-listen', '127.0.0.1:9000', '--webhook-listen', '127.0.0.1:9443', '--webhook-url', 'https://127.0.0.1:9443/mutate-pods', '--leader-elect', '--lease-duration', '4s', '--lease-renew', '500ms']);
    expect(c).toMatchObject({ kubeconfig: '/k', namespace: 'ops', leaderElect: true, leaseDurationMs: 4000, leaseRenewMs: 500 });
    expect(c.webhookUrl?.port).toBe('9443');
    expect(c.sidecarImage).toBeUndefined();
    expect(parse(['--sidecar-image', 'registry.local/idempo-sidecar:dev']).sidecarImage).toBe('registry.local/idempo-sidecar:dev');
  });
  it('reads env vars, and flags win', () => {
    const c = parse(['--namespace', 'flag'], { IDEMPO_OPERATOR_NAMESPACE: 'env', IDEMPO_OPERATOR_LEADER_ELECT: 'true', IDEMPO_OPERATOR_WEBHOOK_LISTEN: '[::1]:1234' });
    expect(c.namespace).toBe('flag');
    expect(c.leaderElect).toBe(true);
    expect(c.webhookListen).toEqual({ host: '::1', port: 1234 });
  });
  it('returns help', () => expect(parseConfig(['-h'], {}, noFile)).toBe('help'));
  it('a boolean variable that is neither true nor false is an error, not false', () => {
    expect(() => parse([], { IDEMPO_OPERATOR_LEADER_ELECT: 'ture' })).toThrow(/--leader-elect: IDEMPO_OPERATOR_LEADER_ELECT must be true or false, got "ture"/);
    expect(parse([], { IDEMPO_OPERATOR_LEADER_ELECT: 'no' }).leaderElect).toBe(false);
  });
  const bad: Array<[string[], RegExp]> = [
    [['--nope'], /nope/],
    [['--metrics-listen', 'x'], /--metrics-listen: expected HOST:PORT/],
    [['--webhook-url', 'http://x/y'], /--webhook-url: must be https/],
    [['--lease-duration', 'soon'], /--lease-duration: expected a duration/],
    [['--lease-duration', '2s', '--lease-renew', '3s'], /--lease-renew/],
    [['--native-sidecars', 'maybe'], /--native-sidecars/],
  ];
  for (const [argv, re] of bad)
    it(`rejects ${argv.join(' ')} with one line`, () => {
      try {
        parse(argv);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(FlagError);
        expect((e as Error).message).toMatch(re);
        expect((e as Error).message).not.toContain('\n');
      }
    });
});
