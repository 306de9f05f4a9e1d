// The one way tests wait: poll a condition until it holds or a deadline passes. The machine is
// shared and loaded, so deadlines are generous, and nothing waits a fixed time instead.

/** Thrown by a condition that can never hold now (the process it waits on exited): ends the wait at once. */
export class GiveUp extends Error {}

/**
 * Calls `fn` until it returns something other than undefined/false and returns that value.
 * A throw counts as "not yet" (the thing may not exist yet), except GiveUp; the last error
 * is in the timeout message, with `what` naming the condition.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
