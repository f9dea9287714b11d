import { spaPort } from "../../src/protocol/spa/keys.js";
import { describe, expect, it } from "vitest";
import { defaultServerConfig } from "../../server/config/schema.js";
import { Matcher } from "../../server/matcher/matcher.js";
import {
  computeWatch,
  MAX_WATCH_SHARE,
  requiredDensity,
  sweepPassBound,
  SWEEP_PASS_TARGET,
  type PrefilterOptions,
  type RandomSource,
} from "../../server/prefilter.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { stepStartMs } from "../../src/protocol/window.js";
import { client, knock, MATCHER_OPTIONS, profile, T, T0_MS } from "../support/matcher-fixtures.js";

const DEFAULTS = defaultServerConfig({ clientsFile: "/dev/null" });
const OPTIONS: PrefilterOptions = { knockRange: DEFAULTS.knockRange, skewWindows: DEFAULTS.skewWindows, toleratedWrongKnocks: DEFAULTS.toleratedWrongKnocks };

/** Deterministic 32-bit words (mulberry32): the same tripwires on every run. */
function seeded(seed: number): RandomSource {
  let a = seed >>> 0;
  return (count) => {
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      out[i] = (t ^ (t >>> 14)) >>> 0;
    }
    return out;
  };
}

function on(w: ReturnType<typeof computeWatch>): Extract<ReturnType<typeof computeWatch>, { on: true }> {
  if (!w.on) throw new Error(`prefilter off: ${w.reason}`);
  return w;
}

describe("prefilter: tripwire density", () => {
  it("when the defaults are used (4 knocks, 10000-59999, 4 tolerated) then the density keeps a sweep below 1e-6 and is the smallest that does", () => {
    const n = 50_000;
    const q = requiredDensity(n, 4, 4, MAX_WATCH_SHARE) as number;
    expect(q).toBeGreaterThan(0.01);
    expect(q).toBeLessThan(0.02);
    expect(sweepPassBound(n, 4, 4, q)).toBeLessThan(SWEEP_PASS_TARGET);
    expect(sweepPassBound(n, 4, 4, q * 0.95)).toBeGreaterThan(SWEEP_PASS_TARGET);
  });

  it("when more wrong knocks are tolerated then more tripwires are needed", () => {
    expect(requiredDensity(50_000, 4, 8, 1) as number).toBeGreaterThan(requiredDensity(50_000, 4, 4, 1) as number);
  });

  it("when a client has 2 knocks then the prefilter turns off, saying why", () => {
    const w = computeWatch([profile(1), profile(2, { knocks: 2 })], T0_MS, OPTIONS, seeded(1));
    expect(w.on).toBe(false);
    expect(!w.on && w.reason).toMatch(/2 knocks in 10000-59999 needs tripwires on more than 25% of the range/);
  });

  it("when the bound is checked by simulation then sweeps over random ascending sequences pass no more often than it says", () => {
    // A small range, so that passing is frequent enough to count: the bound must not be below what happens.
    const n = 200;
    const k = 3;
    const w = 1;
    const q = 0.05;
    const rnd = seeded(7);
    let passed = 0;
    const trials = 20_000;
    for (let t = 0; t < trials; t++) {
      const ports = new Set<number>();
      const draws = rnd(64);
      for (let i = 0; ports.size < k; i++) ports.add((draws[i] as number) % n);
      const sorted = [...ports].sort((a, b) => a - b);
      const wires = rnd(n);
      let ok = true;
      for (let i = 1; i < k && ok; i++) {
        let hits = 0;
        for (let p = (sorted[i - 1] as number) + 1; p < (sorted[i] as number); p++) if ((wires[p] as number) < q * 0x1_0000_0000) hits++;
        ok = hits <= w;
      }
      if (ok) passed++;
    }
    // sweepPassBound includes the 1/k! chance that the sequence is ascending; the simulation sorted it.
    expect(passed / trials).toBeLessThanOrEqual(sweepPassBound(n, k, w, q) * 6 * 1.1);
  });
});

describe("prefilter: watch set", () => {
  it("when computed then it holds every port of every client's sequences for T-s..T+s, each client on its own period", () => {
    const alice = profile(1);
    const bob = profile(2, { periodSeconds: 60, knocks: 6 });
    const w = on(computeWatch([alice, bob], T0_MS, OPTIONS, seeded(1)));
    const set = new Set([...w.starts, ...w.later]);
    const bobStep = Math.floor(T0_MS / 60_000);
    for (const s of [T - 1, T, T + 1]) for (const port of deriveSequence(alice, s)) expect(set.has(port)).toBe(true);
    for (const s of [bobStep - 1, bobStep, bobStep + 1]) for (const port of deriveSequence(bob, s)) expect(set.has(port)).toBe(true);
    for (const s of [T - 1, T, T + 1]) expect(w.starts).toContain(deriveSequence(alice, s)[0]);
    expect([...w.starts, ...w.later].sort((a, b) => a - b)).toEqual([...set].sort((a, b) => a - b));
    expect(w.later.some((port) => w.starts.includes(port))).toBe(false);
    expect(w.tripwires.some((port) => set.has(port))).toBe(false);
  });

  it("when computed then it is valid until the first window change of any client", () => {
    const w = on(computeWatch([profile(1), profile(2, { periodSeconds: 60 })], T0_MS, OPTIONS, seeded(1)));
    expect(w.validUntilMs).toBe(Math.min(stepStartMs(T + 1, 30), (Math.floor(T0_MS / 60_000) + 1) * 60_000));
  });

  it("when the window moves then the sequences follow and the tripwires are drawn again", () => {
    const alice = profile(1);
    const now = on(computeWatch([alice], T0_MS, OPTIONS, seeded(1)));
    const next = on(computeWatch([alice], T0_MS + 30_000, OPTIONS, seeded(2)));
    const nextSet = new Set([...next.starts, ...next.later]);
    for (const port of deriveSequence(alice, T + 2)) expect(nextSet.has(port)).toBe(true);
    expect(next.starts).not.toEqual(now.starts);
    expect(next.tripwires).not.toEqual(now.tripwires);
  });

  it("when computed then the tripwires cover about the needed density of the range, well under a quarter", () => {
    const w = on(computeWatch([profile(1)], T0_MS, OPTIONS, seeded(3)));
    const n = OPTIONS.knockRange.max - OPTIONS.knockRange.min + 1;
    const expected = w.tripwireDensity * n;
    expect(w.tripwires.length).toBeGreaterThan(expected * 0.85);
    expect(w.tripwires.length).toBeLessThan(expected * 1.15);
    expect([...w.starts, ...w.later, ...w.tripwires].every((p) => p >= OPTIONS.knockRange.min && p <= OPTIONS.knockRange.max)).toBe(true);
  });

  it("when a first port is also a later port of a watched sequence then it is logged at once, and only a port that is nothing but a first port may wait in the kernel's batch", () => {
    const profiles = Array.from({ length: 200 }, (_, i) => profile(100 + i));
    const w = on(computeWatch(profiles, T0_MS, OPTIONS, seeded(6)));
    const laterAnywhere = new Set<number>();
    for (const p of profiles) for (const s of [T - 1, T, T + 1]) for (const port of deriveSequence(p, s).slice(1)) laterAnywhere.add(port);
    const mayBeLast = w.starts.filter((port) => laterAnywhere.has(port));
    expect(mayBeLast.length).toBeGreaterThan(0); // 600 first ports among 1800 later ones: some coincide
    expect(w.instant).toEqual(mayBeLast);
    expect(w.later.some((port) => w.starts.includes(port))).toBe(false);
  });

  it("when there are no clients then nothing is watched (no sequence to protect) until the next 30 s window", () => {
    const w = on(computeWatch([], T0_MS, OPTIONS, seeded(4)));
    expect([...w.starts, ...w.later, ...w.tripwires]).toEqual([]);
    expect(w.validUntilMs).toBe(stepStartMs(T + 1, 30));
  });
});

describe("prefilter: a tripwire hit in the matcher", () => {
  it("when more than toleratedWrongKnocks tripwires are hit between two ports of a sequence then its progress resets and the rest of the sequence opens nothing", () => {
    const p = profile(10);
    const m = new Matcher([client("alice", p)], MATCHER_OPTIONS, T0_MS);
    const W = MATCHER_OPTIONS.toleratedWrongKnocks;
    const w = on(computeWatch([p], T0_MS, OPTIONS, seeded(5)));
    const tripwires = w.tripwires.slice(0, W + 1);
    expect(tripwires).toHaveLength(W + 1);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const kinds = [a, b, ...tripwires, c, d].map((port, i) => knock(m, "198.18.0.9", port, T0_MS + i * 20).kind);
    expect(kinds).toContain("reset");
    expect(kinds).not.toContain("open");
    expect(kinds.slice(-2)).toEqual(["ignored", "ignored"]);
  });
});

describe("prefilter: SPA clients", () => {
  it("when a client knocks with SPA then its SPA port of each watched step is a first port, heard from anyone, and it needs no tripwires", () => {
    const spa = { ...profile(21), mode: "spa" as const };
    const w = on(computeWatch([spa], T0_MS, OPTIONS, seeded(8)));
    for (const s of [T - 1, T, T + 1]) expect(w.starts).toContain(spaPort(spa, s));
    for (const s of [T - 1, T, T + 1]) expect(w.instant).toContain(spaPort(spa, s)); // one datagram: never batched
    expect(w.later).toEqual([]);
    expect(w.tripwires).toEqual([]);
    const both = on(computeWatch([{ ...spa, mode: "both" as const }], T0_MS, OPTIONS, seeded(8)));
    expect(both.starts).toContain(spaPort(spa, T));
    expect(both.starts).toContain(deriveSequence(spa, T)[0]);
    expect(both.instant).not.toContain(deriveSequence(spa, T)[0]); // a sequence's first port may wait
    expect(both.tripwires.length).toBeGreaterThan(100);
  });
});
