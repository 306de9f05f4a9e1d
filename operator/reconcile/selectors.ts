// When do two policies conflict? When some set of pod labels would be matched by both
// selectors — then the webhook cannot tell which policy a pod should get. We decide that
// exactly: a conjunction of two LabelSelectors is satisfiable iff, key by key, the
// requirements on that key can all hold at once (keys are independent of each other).

export type LabelSelectorRequirement = { key: string; operator: string; values?: string[] };
export type LabelSelector = { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] };

type KeyConstraint = {
  mustExist: boolean;
  mustNotExist: boolean;
  /** Allowed values when the key is present; undefined means any value. */
  allowed?: Set<string>;
  excluded: Set<string>;
};

/** True when at least one label set satisfies every selector given (an empty selector matches everything). */
export function selectorsOverlap(...selectors: Array<LabelSelector | undefined>): boolean {
  const keys = new Map<string, KeyConstraint>();
  const at = (k: string): KeyConstraint => {
    let c = keys.get(k);
    if (!c) keys.set(k, (c = { mustExist: false, mustNotExist: false, excluded: new Set() }));
    return c;
  };
  const restrict = (c: KeyConstraint, values: string[]) => {
    const v = new Set(values);
    c.allowed = c.allowed ? new Set([...c.allowed].filter((x) => v.has(x))) : v;
  };
  for (const s of selectors) {
    for (const [k, v] of Object.entries(s?.matchLabels ?? {})) {
      const c = at(k);
      c.mustExist = true;
      restrict(c, [v]);
    }
    for (const r of s?.matchExpressions ?? []) {
      const c = at(r.key);
      switch (r.operator) {
        case 'In':
          c.mustExist = true;
          restrict(c, r.values ?? []);
          break;
        case 'NotIn':
          // NotIn also matches pods without the key, as in Kubernetes.
          for (const v of r.values ?? []) c.excluded.add(v);
          break;
        case 'Exists':
          c.mustExist = true;
          break;
        case 'DoesNotExist':
          c.mustNotExist = true;
          break;
        default:
          // An operator we do not know: assume it can match, so we err towards reporting a conflict.
          break;
      }
    }
  }
  for (const c of keys.values()) {
    if (c.mustExist && c.mustNotExist) return false;
    if (c.mustExist && c.allowed && ![...c.allowed].some((v) => !c.excluded.has(v))) return false;
  }
  return true;
}

/** Canonical JSON of a selector, for messages and equality. */
export function selectorString(s: LabelSelector | undefined): string {
  const ml = Object.entries(s?.matchLabels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const parts = ml.map(([k, v]) => `${k}=${v}`);
  for (const r of s?.matchExpressions ?? []) parts.push(`${r.key} ${r.operator}${r.values ? ` (${[...r.values].sort().join(',')})` : ''}`);
  return parts.length ? parts.join(', ') : '<all pods>';
}
