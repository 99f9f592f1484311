/**
 * Glob patterns of the token's claims (`rooms`, `presence`): `*` matches any run of characters, `?`
 * one character, everything else itself, anchored at both ends. Matched by the iterative
 * wildcard algorithm (remember the last `*`, resume after it): no regular expression, no
 * backtracking blow-up; at most pattern length × text length steps, both bounded (a claim entry is
 * at most 256 characters, a room id 128, a user id 255).
 */

export interface Glob {
  test(text: string): boolean;
}

/** Longest glob accepted in a claim. */
export const MAX_GLOB_LENGTH = 256;

export function globMatch(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    const c = glob.charCodeAt(g);
    if (g < glob.length && c !== 42 && (c === 63 || c === text.charCodeAt(t))) {
      g++;
      t++;
    } else if (g < glob.length && c === 42) {
      star = g++;
      resume = t;
    } else if (star >= 0) {
      g = star + 1;
      t = ++resume;
    } else return false;
  }
  while (g < glob.length && glob.charCodeAt(g) === 42) g++;
  return g === glob.length;
}

const cache = new Map<string, Glob>();

/** A compiled glob (cached: claims repeat across connections). */
export function compileGlob(glob: string): Glob {
  let m = cache.get(glob);
  if (!m) {
    m = { test: (text) => globMatch(glob, text) };
    if (cache.size > 10000) cache.clear();
    cache.set(glob, m);
  }
  return m;
}

/** True when any of `globs` matches `text`; `undefined` (no claim) allows everything. */
export function anyGlob(globs: string[] | undefined, text: string): boolean {
  return !globs || globs.some((g) => compileGlob(g).test(text));
}
