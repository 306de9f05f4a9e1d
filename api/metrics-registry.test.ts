import { describe, expect, it } from 'vitest';
import { CONTENT_TYPE, Registry } from './metrics-registry.js';
import { parseExposition } from '../test/support/prom-text.js';

describe('metrics registry: Prometheus text exposition 0.0.4', () => {
  it('writes HELP, TYPE and samples per family, families apart by a blank line', async () => {
    const r = new Registry();
    const c = r.counter({ name: 'x_total', help: 'Things.' });
    const g = r.gauge({ name: 'x_level', help: 'Level.' });
    c.inc();
    c.inc(2);
    g.set(7);
    g.dec(2);
    expect(await r.metrics()).toBe('# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n\n# HELP x_level Level.\n# TYPE x_level gauge\nx_level 5\n');
    expect(r.contentType).toBe(CONTENT_TYPE);
  });

  it('a labelled counter shows only the label sets it counted, in the order first seen', async () => {
    const r = new Registry();
    const c = r.counter({ name: 'b_total', help: 'B.', labelNames: ['topic', 'outcome'] as const });
    expect(await r.metrics()).toBe('# HELP b_total B.\n# TYPE b_total counter\n');
    c.inc({ topic: 't2', outcome: 'written' }, 4);
    c.inc({ topic: 't1', outcome: 'failed' });
    c.inc({ topic: 't2', outcome: 'written' });
    c.inc({ topic: 't2', outcome: 'failed' });
    expect((await r.metrics()).split('\n').slice(2, -1)).toEqual([
      'b_total{topic="t2",outcome="written"} 5',
      'b_total{topic="t1",outcome="failed"} 1',
      'b_total{topic="t2",outcome="failed"} 1',
    ]);
  });

  it('a series kept from series() counts into the same line', async () => {
    const r = new Registry();
    const c = r.counter({ name: 'req_total', help: 'R.', labelNames: ['api'] as const });
    const produce = c.series({ api: 'Produce' });
    produce.inc();
    c.inc({ api: 'Produce' });
    expect(c.series({ api: 'Produce' })).toBe(produce);
    expect(await r.metrics()).toContain('\nreq_total{api="Produce"} 2\n');
  });

  it('bound maps a label value before it is counted (a bounded label set)', async () => {
    const r = new Registry();
    const known = new Set(['orders']);
    const c = r.counter({ name: 'd_total', help: 'D.', labelNames: ['topic'] as const, bound: { topic: (t) => (known.has(t) ? t : '_unknown') } });
    c.inc({ topic: 'orders' });
    c.inc({ topic: 'typo1' });
    c.inc({ topic: 'typo2' });
    expect((await r.metrics()).split('\n').slice(2, -1)).toEqual(['d_total{topic="orders"} 1', 'd_total{topic="_unknown"} 2']);
  });

  it('escapes label values (backslash, quote, newline) and help text (backslash, newline)', async () => {
    const r = new Registry();
    r.counter({ name: 'e_total', help: 'a\\b\nc "q"', labelNames: ['reason'] as const }).inc({ reason: 'x"y\\z\nw' });
    const text = await r.metrics();
    expect(text).toBe('# HELP e_total a\\\\b\\nc "q"\n# TYPE e_total counter\ne_total{reason="x\\"y\\\\z\\nw"} 1\n');
    expect(parseExposition(text).get('e_total')!.samples[0].labels).toEqual({ reason: 'x"y\\z\nw' });
  });

  it('a counter ignores negative and non-numeric increments', async () => {
    const r = new Registry();
    const c = r.counter({ name: 'n_total', help: 'N.' });
    c.inc(2);
    c.inc(-1);
    c.inc(NaN);
    expect(c.value).toBe(2);
  });

  it('histograms: cumulative buckets with le first, +Inf, _sum and _count', async () => {
    const r = new Registry();
    const h = r.histogram({ name: 'lat_seconds', help: 'L.', buckets: [0.01, 0.1, 1] });
    for (const v of [0.005, 0.01, 0.05, 2, Infinity]) h.observe(v);
    const l = r.histogram({ name: 'api_seconds', help: 'A.', labelNames: ['api'] as const, buckets: [0.5] });
    l.series({ api: 'Fetch' }).observe(0.25);
    l.observe({ api: 'Fetch' }, 3);
    expect((await r.metrics()).split('\n')).toEqual([
      '# HELP lat_seconds L.',
      '# TYPE lat_seconds histogram',
      'lat_seconds_bucket{le="0.01"} 2',
      'lat_seconds_bucket{le="0.1"} 3',
      'lat_seconds_bucket{le="1"} 3',
      'lat_seconds_bucket{le="+Inf"} 4',
      'lat_seconds_sum 2.065',
      'lat_seconds_count 4',
      '',
      '# HELP api_seconds A.',
      '# TYPE api_seconds histogram',
      'api_seconds_bucket{le="0.5",api="Fetch"} 1',
      'api_seconds_bucket{le="+Inf",api="Fetch"} 2',
      'api_seconds_sum{api="Fetch"} 3.25',
      'api_seconds_count{api="Fetch"} 2',
      '',
    ]);
  });

  it('read metrics are read at every scrape', async () => {
    const r = new Registry();
    let n = 1;
    r.gauge({ name: 'q_bytes', help: 'Q.', read: () => n });
    r.readCounter({ name: 'cpu_seconds_total', help: 'C.', read: () => n * 10 });
    expect(await r.metrics()).toContain('\nq_bytes 1\n');
    n = 2;
    const text = await r.metrics();
    expect(text).toContain('\nq_bytes 2\n');
    expect(text).toContain('# TYPE cpu_seconds_total counter\ncpu_seconds_total 20\n');
  });

  it('refuses a name defined twice', () => {
    const r = new Registry();
    r.counter({ name: 'twice_total', help: 'T.' });
    expect(() => r.gauge({ name: 'twice_total', help: 'T.' })).toThrow(/defined twice/);
  });
});
