// Seeded randomness for the soak: one 32-bit seed fixes the fault schedule and every traffic
// choice. Each actor (the fault planner, the room traffic, each churning user, ...) draws from its
// own stream derived from the seed and a label, so how the asynchronous actors interleave at run
// time does not shift what the others choose.

/** A generator of numbers in [0, 1). */
export type Rng = () => number;

/** mulberry32: small, fast and good enough for schedules. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The stream of `label` under `seed` (FNV-1a of the label mixed into the seed). */
export function derive(seed: number, label: string): Rng {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return mulberry32(h);
}

/** A number in [lo, hi). */
export const uniform = (r: Rng, lo: number, hi: number): number => lo + r() * (hi - lo);

/** An integer in [lo, hi]. */
export const intIn = (r: Rng, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** One element of a non-empty list. */
export const pick = <T>(r: Rng, list: readonly T[]): T => list[Math.floor(r() * list.length)];

/** `n` distinct elements of `list` (n <= list.length). */
export function sample<T>(r: Rng, list: readonly T[], n: number): T[] {
  return shuffle(r, list).slice(0, n);
}

/** A shuffled copy (Fisher-Yates). */
export function shuffle<T>(r: Rng, list: readonly T[]): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Time to the next event of a Poisson process of `ratePerSecond`, in ms. */
export const expoMs = (r: Rng, ratePerSecond: number): number => (-Math.log(1 - r()) / ratePerSecond) * 1000;

/** A random 31-bit seed (when SOAK_SEED is not given). */
export const randomSeed = (): number => 1 + Math.floor(Math.random() * 0x7ffffffe);
