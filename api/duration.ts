// Durations are Go-style strings ("100ms", "30s", "5m", "1h", "1m30s") because CEL's
// duration() in the API server parses exactly those; parseDuration reads the same subset.

/** RE2- and ECMAScript-compatible (the API server evaluates `pattern` with Go's regexp). */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const WHOLE = new RegExp(DURATION_PATTERN);

/** Milliseconds in a duration string; throws on anything DURATION_PATTERN rejects. */
export function parseDuration(s: string): number {
  if (typeof s !== 'string' || !WHOLE.test(s)) {
    throw new Error(`invalid duration ${JSON.stringify(s)}: expected e.g. 100ms, 30s, 5m, 1h`);
  }
  let total = 0;
  for (const m of s.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]];
  return total;
}

export function isDuration(s: unknown): s is string {
  return typeof s === 'string' && WHOLE.test(s);
}
