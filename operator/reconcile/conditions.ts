// Kubernetes-shaped conditions: the transition time moves only when status flips.

export type Condition = {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
};

/** metav1.Time is RFC 3339 with second precision. */
export const kubeTime = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Returns the new condition list with `next` merged in (others kept, order stable). */
export function setCondition(existing: Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const list = [...(existing ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = prev && prev.status === next.status && prev.lastTransitionTime ? prev.lastTransitionTime : kubeTime(now);
  const c: Condition = { ...next, lastTransitionTime };
  if (i >= 0) list[i] = c;
  else list.push(c);
  return list;
}
