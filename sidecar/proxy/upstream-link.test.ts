import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SidecarMetrics } from '../metrics/metrics.js';
import { UpstreamLink, type UpstreamLinkEvents } from './upstream-link.js';
import { waitFor } from '../../test/support/poll.js';

describe('UpstreamLink', () => {
  // A broker that left the metadata (killed, so the last refresh did not list it) while a client
  // still connects to its listener: the owner closes its client connection from `unreachable`,
  // which uses the link. Fired inside the constructor, that crashed the sidecar (seen in the
  // fault campaign, kafkajs/all seed 2: "Cannot read properties of undefined (reading 'close')").
  it('reports an unreachable broker after its constructor returned, never from inside it', async () => {
    const seen: string[] = [];
    let link: UpstreamLink | undefined;
    const events: UpstreamLinkEvents = {
      connected: () => seen.push('connected'),
      unreachable: (reason) => {
        seen.push(`unreachable: ${reason}`);
        link!.close();
      },
      lost: () => ({ redial: false, reason: 'test' }),
      broken: (reason) => seen.push(`broken: ${reason}`),
      abandoned: () => undefined,
      full: () => undefined,
      writable: () => undefined,
    };
    link = new UpstreamLink({ log: pino({ level: 'silent' }), metrics: new SidecarMetrics(), maxFrameBytes: 1 << 20, resolve: () => undefined }, events);
    expect(seen).toEqual([]);
    await waitFor('unreachable reported', () => seen.length > 0, 5_000, 5);
    expect(seen).toEqual(['unreachable: no upstream broker reachable']);
  });
});
