import { describe, expect, it } from 'vitest';
import { ApiKey } from '../codec/api.js';
import { intersectVersions } from './rewrite.js';

describe('ApiVersions intersection', () => {
  it('caps decoded APIs at what the sidecar parses and keeps the broker minimum', () => {
    const out = intersectVersions([
      { apiKey: ApiKey.Produce, minVersion: 0, maxVersion: 99 },
      { apiKey: ApiKey.Metadata, minVersion: 4, maxVersion: 12 },
      { apiKey: ApiKey.Fetch, minVersion: 4, maxVersion: 99 },
    ]);
    expect(out).toEqual([
      { apiKey: ApiKey.Produce, minVersion: 0, maxVersion: 13 },
      { apiKey: ApiKey.Metadata, minVersion: 4, maxVersion: 12 },
      // not decoded: the broker's range, untouched
      { apiKey: ApiKey.Fetch, minVersion: 4, maxVersion: 99 },
    ]);
  });

  it('drops a decoded API whose ranges do not overlap', () => {
    expect(intersectVersions([{ apiKey: ApiKey.Produce, minVersion: 0, maxVersion: 2 }])).toEqual([]);
  });
});
