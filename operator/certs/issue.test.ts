// Certificates: what Node's own X.509 and TLS stacks make of them (names, chain, a real
// handshake), and when they are due for renewal.
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { certInfo, coversAndChains, issueCA, issueServing, needsRenewal } from './issue.js';

const DAY = 86_400_000;
const ca = issueCA();
const serving = issueServing(ca, ['idempo-webhook.idempo.svc', 'localhost'], ['127.0.0.1', '::1'], 90);

describe('issueCA / issueServing', () => {
  it('makes a CA that signs the serving certificate', () => {
    const caX = new X509Certificate(ca.certPem);
    const sx = new X509Certificate(serving.certPem);
    expect(caX.ca).toBe(true);
    expect(sx.ca).toBe(false);
    expect(sx.checkIssued(caX)).toBe(true);
    expect(sx.verify(caX.publicKey)).toBe(true);
    expect(caX.verify(caX.publicKey)).toBe(true);
    expect(sx.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // extended key usage: serverAuth
  });

  it('puts the DNS names and IPs in the SAN', () => {
    const sx = new X509Certificate(serving.certPem);
    expect(sx.checkHost('idempo-webhook.idempo.svc')).toBe('idempo-webhook.idempo.svc');
    expect(sx.checkHost('localhost')).toBe('localhost');
    expect(sx.checkHost('evil.example')).toBeUndefined();
    expect(sx.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(sx.checkIP('::1')).toBe('::1');
    expect(sx.checkIP('10.0.0.1')).toBeUndefined();
    const info = certInfo(serving.certPem);
    expect(info.dnsNames).toEqual(['idempo-webhook.idempo.svc', 'localhost']);
    expect(info.ipAddresses).toHaveLength(2);
    expect(info.ipAddresses[0]).toBe('127.0.0.1');
    expect(info.subjectCN).toBe('idempo-webhook.idempo.svc');
    expect(info.issuerCN).toBe('idempo-webhook-ca');
  });

  it('is valid for the asked number of days, back-dated a little', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    const s = issueServing(ca, ['a'], [], 10, now);
    const info = certInfo(s.certPem);
    expect(info.notAfter.getTime()).toBe(now.getTime() + 10 * DAY);
    expect(now.getTime() - info.notBefore.getTime()).toBe(5 * 60_000);
    const c = certInfo(issueCA({ now, validityDays: 100 }).certPem);
    expect(c.isCA).toBe(true);
    expect(c.notAfter.getTime()).toBe(now.getTime() + 100 * DAY);
  });

  it('uses a positive serial and a different one each time', () => {
    const a = new X509Certificate(issueServing(ca, ['a']).certPem).serialNumber;
    const b = new X509Certificate(issueServing(ca, ['a']).certPem).serialNumber;
    expect(a).not.toBe(b);
    expect(parseInt(a[0], 16)).toBeLessThan(8);
  });

  it('refuses no names and bad IPs', () => {
    expect(() => issueServing(ca, [], [])).toThrow(/at least one/);
    expect(() => issueServing(ca, ['a'], ['not-an-ip'])).toThrow(/not an IP/);
  });

  it('serves TLS that a client trusting only the CA accepts', async () => {
    const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    const get = (caPem: string, servername?: string) =>
      new Promise<string>((resolve, reject) => {
        request({ host: '127.0.0.1', port, ca: caPem, servername, path: '/' }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        })
          .on('error', reject)
          .end();
      });
    try {
      expect(await get(ca.certPem)).toBe('ok');
      expect(await get(ca.certPem, 'idempo-webhook.idempo.svc')).toBe('ok');
      await expect(get(issueCA().certPem)).rejects.toThrow();
    } finally {
      server.close();
    }
  });
});

describe('needsRenewal', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const year = issueServing(ca, ['a'], [], 365, now).certPem;
  const short = issueServing(ca, ['a'], [], 3, now).certPem;

  it.each([
    ['fresh 1-year cert', year, now, false],
    ['1-year cert 31 days before expiry', year, new Date(now.getTime() + 334 * DAY), false],
    ['1-year cert 30 days before expiry', year, new Date(now.getTime() + 335 * DAY), true],
    ['expired', year, new Date(now.getTime() + 400 * DAY), true],
    ['not yet valid', year, new Date(now.getTime() - DAY), true],
    ['3-day cert after a day', short, new Date(now.getTime() + DAY), false],
    ['3-day cert in its last third', short, new Date(now.getTime() + 2.1 * DAY), true],
    ['garbage', 'not a pem', now, true],
  ])('%s', (_n, pem, at, want) => {
    expect(needsRenewal(pem, at)).toBe(want);
  });

  it('takes an explicit threshold', () => {
    expect(needsRenewal(year, now, 366 * DAY)).toBe(true);
    expect(needsRenewal(year, now, DAY)).toBe(false);
  });
});

describe('coversAndChains', () => {
  it('checks names, IPs and the signer', () => {
    expect(coversAndChains(serving.certPem, ca.certPem, ['localhost'], ['127.0.0.1'])).toBe(true);
    expect(coversAndChains(serving.certPem, ca.certPem, ['localhost'], ['0:0:0:0:0:0:0:1'])).toBe(true);
    expect(coversAndChains(serving.certPem, ca.certPem, ['other'], [])).toBe(false);
    expect(coversAndChains(serving.certPem, ca.certPem, [], ['10.0.0.1'])).toBe(false);
    expect(coversAndChains(serving.certPem, issueCA().certPem, ['localhost'], [])).toBe(false);
    expect(coversAndChains('junk', ca.certPem, [], [])).toBe(false);
  });
});
