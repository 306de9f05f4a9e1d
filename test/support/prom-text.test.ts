import { describe, expect, it } from 'vitest';
import { parseExposition, sumMetric } from './prom-text.js';

const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\na_total{x="2"} 3\n\n# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3.5\nh_count 2\n';

describe('the tests\' reader of the Prometheus text format', () => {
  it('reads families, samples and labels', () => {
    const f = parseExposition(ok);
    expect([...f.keys()]).toEqual(['a_total', 'h']);
    expect(f.get('a_total')).toMatchObject({ type: 'counter', help: 'A.', samples: [{ name: 'a_total', labels: { x: '1' }, value: 2 }, { name: 'a_total', labels: { x: '2' }, value: 3 }] });
    expect(sumMetric(ok, 'a_total')).toBe(5);
    expect(sumMetric(ok, 'a_total', { x: '2' })).toBe(3);
    expect(sumMetric(ok, 'h_count')).toBe(2);
  });

  it.each([
    ['a sample before its TYPE', 'a_total 1\n'],
    ['a sample of another family', '# TYPE a counter\nb 1\n'],
    ['a family split in two', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# HELP a again\n'],
    ['a second TYPE', '# TYPE a gauge\n# TYPE a gauge\n'],
    ['a series twice', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'],
    ['a label twice', '# TYPE a gauge\na{x="1",x="2"} 1\n'],
    ['a bad value', '# TYPE a gauge\na 1,5\n'],
    ['an unquoted label value', '# TYPE a gauge\na{x=1} 1\n'],
    ['buckets not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ['no +Inf bucket', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ['no final newline', '# TYPE a gauge\na 1'],
  ])('refuses %s', (_, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
