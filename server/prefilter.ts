/**
 * The kernel prefilter's watch set (listener nflog, config `prefilter`), pure: the gate logs a knock-range packet
 * only when its port is in this set. It holds every port of every client's sequences for steps T-s..T+s (the ones
 * the matcher can accept now) and a random set of "tripwire" ports re-drawn each window, so that a sweep still
 * reaches the matcher as wrong knocks and is reset (docs/design.md "Kernel prefilter"). First ports are kept
 * apart: the gate logs them from any source, the rest only from sources that sent a first port lately.
 */
import { deriveSequence } from "../src/protocol/derive.js";
import type { KnockProfile } from "../src/protocol/profile.js";
import { spaPort } from "../src/protocol/spa/keys.js";
import { allowsSequence, allowsSpa, type KnockMode } from "../src/protocol/spa/mode.js";
import { stepAt } from "../src/protocol/window.js";

/** The chance, per client and window, that an ascending sweep completes the sequence unseen by the tripwires. */
export const SWEEP_PASS_TARGET = 1e-6;
/** Above this share of the knock range the prefilter saves too little to be worth its blind spots: it turns off. */
export const MAX_WATCH_SHARE = 0.25;

export type PrefilterOptions = {
  readonly knockRange: { readonly min: number; readonly max: number };
  readonly skewWindows: number;
  readonly toleratedWrongKnocks: number;
};

/** 32-bit unsigned random integers (crypto-random in the daemon, seeded in tests). */
export type RandomSource = (count: number) => Uint32Array;

export type Watch =
  | {
      readonly on: true;
      /** The first port of each sequence the matcher can accept now, and each SPA port; sorted, unique. */
      readonly starts: readonly number[];
      /**
       * The ports among `starts` that the gate logs at once: SPA ports, and first ports that are also a later port
       * of a watched sequence. Only a port that is nothing but a first port may wait in the kernel's batch, since
       * it can never be a last knock. Sorted, unique.
       */
      readonly instant: readonly number[];
      /** The other ports of those sequences, none of them a first port; sorted, unique. */
      readonly later: readonly number[];
      /** The tripwires, none of them a sequence port; sorted, unique. */
      readonly tripwires: readonly number[];
      readonly tripwireDensity: number;
      /** When the set must be recomputed: the first step change of any client after now (ms since the epoch). */
      readonly validUntilMs: number;
    }
  | { readonly on: false; readonly reason: string };

/**
 * Binomial(n, q) <= w: the chance a sweep crossing n ports hits at most w tripwires (each port is a tripwire with
 * probability q, independently), so that the matcher tolerates it.
 */
function atMost(n: number, q: number, w: number): number {
  if (q <= 0) return 1;
  if (q >= 1) return w >= n ? 1 : 0;
  let term = Math.pow(1 - q, n);
  let sum = term;
  for (let i = 1; i <= Math.min(w, n); i++) {
    term *= ((n - i + 1) / i) * (q / (1 - q));
    sum += term;
  }
  return Math.min(1, sum);
}

/**
 * An upper bound on the chance that an ascending sweep completes a k-port sequence of a range of n ports without
 * more than w tripwire hits between two of its consecutive ports. The sweep can only complete an ascending
 * sequence (chance 1/k!); then each of the k-1 gaps between consecutive ports must hold at most w tripwires. The
 * gap (ports strictly between) of two consecutive ports of a sorted k-subset of n ports is at least j with chance
 * C(n-j, k) / C(n, k). The gaps share the fixed range, so they are negatively associated: the chance that all
 * pass is at most the product of the chances that each passes.
 */
export function sweepPassBound(n: number, k: number, w: number, q: number): number {
  let pGap = 0;
  // P(gap >= j) = C(n-j, k) / C(n, k) = prod_{i=0}^{k-1} (n-j-i)/(n-i)
  const tail = (j: number): number => {
    let p = 1;
    for (let i = 0; i < k; i++) {
      const num = n - j - i;
      if (num <= 0) return 0;
      p *= num / (n - i);
    }
    return p;
  };
  let prev = tail(0);
  for (let j = 0; j <= n - k; j++) {
    const next = tail(j + 1);
    pGap += (prev - next) * atMost(j, q, w);
    prev = next;
    if (prev === 0) break;
  }
  let orders = 1;
  for (let i = 2; i <= k; i++) orders *= i;
  return Math.pow(Math.min(1, pGap), k - 1) / orders;
}

/** The smallest tripwire density whose sweepPassBound is below the target, or undefined above `maxDensity`. */
export function requiredDensity(n: number, k: number, w: number, maxDensity: number): number | undefined {
  const key = `${n}/${k}/${w}/${maxDensity}`;
  if (densityCache.has(key)) return densityCache.get(key);
  const q = searchDensity(n, k, w, maxDensity);
  densityCache.set(key, q);
  return q;
}

/** The search costs tens of ms per (range, knocks); the daemon asks every window. */
const densityCache = new Map<string, number | undefined>();

function searchDensity(n: number, k: number, w: number, maxDensity: number): number | undefined {
  if (sweepPassBound(n, k, w, maxDensity) >= SWEEP_PASS_TARGET) return undefined;
  let lo = 0;
  let hi = maxDensity;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (sweepPassBound(n, k, w, mid) < SWEEP_PASS_TARGET) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The tripwire density the clients need: the largest any client needs (its own range, knocks), or a reason the
 * prefilter cannot help. Depends only on the configuration, so the daemon computes it once.
 */
export function tripwireDensity(profiles: readonly KnockProfile[], options: PrefilterOptions): { density: number } | { reason: string } {
  let density = 0;
  for (const p of profiles) {
    const n = p.portMax - p.portMin + 1;
    const q = requiredDensity(n, p.knocks, options.toleratedWrongKnocks, MAX_WATCH_SHARE);
    if (q === undefined) {
      return {
        reason: `a client with ${p.knocks} knocks in ${p.portMin}-${p.portMax} needs tripwires on more than ${MAX_WATCH_SHARE * 100}% of the range to stop sweeps (toleratedWrongKnocks ${options.toleratedWrongKnocks})`,
      };
    }
    density = Math.max(density, q);
  }
  return { density };
}

/** The watch set at `nowMs`: the sequences of steps T-s..T+s of every client, plus tripwires drawn with `random`. */
export function computeWatch(
  profiles: readonly (KnockProfile & { readonly mode?: KnockMode | undefined })[],
  nowMs: number,
  options: PrefilterOptions,
  random: RandomSource,
): Watch {
  // Tripwires stop sweeps of sequences; an SPA packet is one authenticated datagram, which no sweep can complete.
  const need = tripwireDensity(
    profiles.filter((p) => allowsSequence(p.mode)),
    options,
  );
  if ("reason" in need) return { on: false, reason: need.reason };
  const { min, max } = options.knockRange;
  const starts = new Set<number>();
  const instant = new Set<number>();
  const later = new Set<number>();
  // Without clients the tripwires still rotate, on the default period.
  let validUntilMs = profiles.length === 0 ? (stepAt(nowMs, 30) + 1) * 30_000 : Number.POSITIVE_INFINITY;
  for (const p of profiles) {
    const step = stepAt(nowMs, p.periodSeconds);
    for (let s = Math.max(0, step - options.skewWindows); s <= step + options.skewWindows; s++) {
      if (allowsSequence(p.mode)) {
        deriveSequence(p, s).forEach((port, i) => {
          if (port >= min && port <= max) (i === 0 ? starts : later).add(port);
        });
      }
      // An SPA packet is a whole knock in one datagram: its port is heard from anyone, like a first port, and at once.
      if (allowsSpa(p.mode)) {
        const port = spaPort(p, s);
        if (port >= min && port <= max) {
          starts.add(port);
          instant.add(port);
        }
      }
    }
    validUntilMs = Math.min(validUntilMs, (step + 1) * p.periodSeconds * 1000);
  }
  // A first port that is also a later port of some watched sequence (another client's, another window's, or its
  // own again) may be a last knock: it cannot wait in the kernel's batch either.
  for (const port of starts) {
    if (later.delete(port)) instant.add(port);
  }
  const threshold = Math.floor(need.density * 0x1_0000_0000);
  const draws = random(max - min + 1);
  const tripwires: number[] = [];
  for (let i = 0; i < draws.length; i++) {
    const port = min + i;
    if ((draws[i] as number) < threshold && !starts.has(port) && !later.has(port)) tripwires.push(port);
  }
  const watched = starts.size + later.size + tripwires.length;
  if (watched > MAX_WATCH_SHARE * (max - min + 1)) {
    return { on: false, reason: `the watch set would hold ${watched} of the ${max - min + 1} knock-range ports, more than ${MAX_WATCH_SHARE * 100}%` };
  }
  const sorted = (set: Set<number>): number[] => [...set].sort((a, b) => a - b);
  return { on: true, starts: sorted(starts), instant: sorted(instant), later: sorted(later), tripwires, tripwireDensity: need.density, validUntilMs };
}
