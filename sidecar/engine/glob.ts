// Topic globs (policy topics.include/exclude): `*` is any run of characters, `?` one
// character, everything else itself. No regular expressions: a pattern such as
// `*-*-*-*-*-events` against a 249-character name of dashes made the regex engine backtrack
// for a minute (issue 8). Here the pattern is split at its stars into literal pieces; the
// first is anchored at the start, the last at the end, and each middle piece is taken at its
// leftmost match (always correct for globs: a later match only leaves less room for the rest).
// Cost: O(name length × pattern length) at worst, no backtracking.

export type Glob = (name: string) => boolean;

export function compileGlob(pattern: string): Glob {
  const pieces = pattern.split('*');
  if (pieces.length === 1) return (name) => name.length === pattern.length && matchAt(name, 0, pattern);
  const head = pieces[0];
  const tail = pieces[pieces.length - 1];
  const middle = pieces.slice(1, -1).filter((p) => p.length > 0);
  const minLength = pieces.reduce((n, p) => n + p.length, 0);
  return (name) => {
    if (name.length < minLength) return false;
    if (!matchAt(name, 0, head) || !matchAt(name, name.length - tail.length, tail)) return false;
    let pos = head.length;
    const end = name.length - tail.length;
    for (const piece of middle) {
      const at = indexOf(name, piece, pos, end);
      if (at < 0) return false;
      pos = at + piece.length;
    }
    return true;
  };
}

/** Whether `piece` (with `?` wildcards) matches `name` at `at`. */
function matchAt(name: string, at: number, piece: string): boolean {
  if (at < 0 || at + piece.length > name.length) return false;
  for (let i = 0; i < piece.length; i++) {
    const c = piece.charCodeAt(i);
    if (c !== 0x3f && c !== name.charCodeAt(at + i)) return false;
  }
  return true;
}

/** Leftmost match of `piece` in name[from, end), or -1. */
function indexOf(name: string, piece: string, from: number, end: number): number {
  for (let at = from; at + piece.length <= end; at++) if (matchAt(name, at, piece)) return at;
  return -1;
}
