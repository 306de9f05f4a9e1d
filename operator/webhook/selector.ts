// Kubernetes LabelSelector semantics (apimachinery labels.SelectorFromSet + requirements).
import type { LabelSelector } from '../../api/index.js';

/**
 * True when the labels satisfy every matchLabels entry and matchExpressions requirement.
 * `{}` matches everything (as in NetworkPolicy). An unknown operator matches nothing, the
 * safe side for an injector.
 */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (l[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key])) return false;
        break;
      case 'NotIn':
        // apimachinery: NotIn matches when the label is absent.
        if (has && values.includes(l[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
