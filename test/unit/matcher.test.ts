import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { KnockProto } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { decodeSecret } from "../../src/protocol/profile-uri.js";
import type { KnockProfile } from "../../src/protocol/profile.js";
import { stepAt, stepStartMs } from "../../src/protocol/window.js";
import type { Decision } from "../../server/matcher/decision.js";
import { Matcher, type MatcherClient } from "../../server/matcher/matcher.js";
import type { MatcherOptions } from "../../server/matcher/options.js";
import { client, knock, MATCHER_OPTIONS as OPTIONS, profile, T, T0_MS } from "../support/matcher-fixtures.js";
import { VECTORS } from "../vectors/v1.js";

function opts(over: Partial<MatcherOptions> = {}): MatcherOptions {
  return { ...OPTIONS, ...over, bruteForce: { ...OPTIONS.bruteForce, ...over.bruteForce } };
}

/** Knocks every port 200 ms apart; returns all decisions (the last one is the interesting one). */
function knockAll(m: Matcher, src: string, ports: readonly number[], startMs: number, gapMs = 200, proto: KnockProto = "tcp"): Decision[] {
  return ports.map((p, i) => knock(m, src, p, startMs + i * gapMs, proto));
}

function last(ds: Decision[]): Decision {
  return ds[ds.length - 1]!;
}

/** A port in the profile's range that is in no sequence of the matcher's table (a sure wrong knock). */
function unusedPort(m: Matcher, p: KnockProfile): number {
  return unusedPorts(m, p, 1)[0]!;
}

/** n distinct such ports (distinct, so none is taken for a retransmission of the one before). */
function unusedPorts(m: Matcher, p: KnockProfile, n: number): number[] {
  const used = new Set(m.tableSnapshot().flatMap((line) => line.split(" ")[2]!.split(",").map(Number)));
  const out: number[] = [];
  for (let port = p.portMin; port <= p.portMax && out.length < n; port++) if (!used.has(port) && !p.exclude.includes(port)) out.push(port);
  if (out.length < n) throw new Error("not enough unused ports");
  return out;
}

/** Deterministic uniform numbers in [0, 1) (mulberry32), so a simulated flood is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("matcher: acceptance rule", () => {
  it("when the vector 1 sequence is knocked at its time then it opens that step for that source", () => {
    const v = VECTORS[0]!;
    const p = profile(0, { secret: decodeSecret(v.secretBase32) });
    const at = v.atUnixSeconds * 1000;
    const m = new Matcher([client("alice", p)], OPTIONS, at);
    const d = last(knockAll(m, "198.18.0.1", v.ports, at));
    expect(d).toEqual({ kind: "open", client: "alice", step: v.step, src: "198.18.0.1", ports: [...v.ports], open: [22] });
    expect(m.lastAcceptedStep("alice")).toBe(v.step);
  });

  it("when a valid knock is repeated then it opens once and the repeat is refused as a replay", () => {
    const p = profile(1);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const seq = deriveSequence(p, T);
    expect(last(knockAll(m, "198.18.0.1", seq, T0_MS)).kind).toBe("open");
    expect(last(knockAll(m, "198.18.0.9", seq, T0_MS + 2000))).toEqual({
      kind: "refuse",
      reason: "replay",
      client: "alice",
      step: T,
      src: "198.18.0.9",
      ports: seq,
    });
    // The same source again, past the retransmission window: still a replay.
    expect(last(knockAll(m, "198.18.0.1", seq, T0_MS + 6000))).toMatchObject({ kind: "refuse", reason: "replay" });
  });

  it("when a newer step was accepted then an older step is a replay", () => {
    const p = profile(2);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T + 1), T0_MS))).toMatchObject({ kind: "open", step: T + 1 });
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T), T0_MS + 2000))).toMatchObject({ kind: "refuse", reason: "replay", step: T });
  });

  it("when steps T-1 then T+1 are knocked then both open (skew 1)", () => {
    const p = profile(3);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T - 1), T0_MS))).toMatchObject({ kind: "open", step: T - 1 });
    expect(last(knockAll(m, "198.18.0.2", deriveSequence(p, T + 1), T0_MS + 1000))).toMatchObject({ kind: "open", step: T + 1 });
    expect(m.lastAcceptedStep("alice")).toBe(T + 1);
  });

  it("when step T+3 is knocked with skew 1 and diagnostic 10 then it is refused as skew +3 and the current window still opens", () => {
    const p = profile(4);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T + 3), T0_MS))).toMatchObject({
      kind: "refuse",
      reason: "skew",
      step: T + 3,
      offsetWindows: 3,
    });
    expect(m.lastAcceptedStep("alice")).toBeUndefined();
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T), T0_MS + 1000)).kind).toBe("open");
  });

  it("when a skewed future step becomes current then a replay of its knock is refused (the skew event spent it)", () => {
    const p = profile(14);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const ahead = deriveSequence(p, T + 3);
    expect(last(knockAll(m, "198.18.0.1", ahead, T0_MS))).toMatchObject({ kind: "refuse", reason: "skew" });
    const later = T0_MS + 3 * 30_000;
    expect(last(knockAll(m, "198.18.0.66", ahead, later))).toMatchObject({ kind: "refuse", reason: "replay", step: T + 3 });
    // The windows around it stay usable for the real client.
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T + 4), later + 2000)).kind).toBe("open");
  });

  it("when a client is created with spent future steps (from the state file) then each is refused as a replay once current", () => {
    const p = profile(15);
    const m = new Matcher([{ ...client("alice", p), spentSteps: [T + 1] }], OPTIONS, T0_MS);
    expect(m.spentSteps("alice")).toEqual([T + 1]);
    expect(last(knockAll(m, "198.18.0.66", deriveSequence(p, T + 1), T0_MS))).toMatchObject({ kind: "refuse", reason: "replay", step: T + 1 });
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T), T0_MS + 1000)).kind).toBe("open");
  });

  it("when step T-3 is knocked then it is skew -3 if nothing newer was accepted, else a replay", () => {
    const p = profile(5);
    const fresh = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    expect(last(knockAll(fresh, "198.18.0.1", deriveSequence(p, T - 3), T0_MS))).toMatchObject({ kind: "refuse", reason: "skew", offsetWindows: -3 });
    const used = new Matcher([client("alice", p, T - 2)], OPTIONS, T0_MS);
    expect(last(knockAll(used, "198.18.0.1", deriveSequence(p, T - 3), T0_MS))).toMatchObject({ kind: "refuse", reason: "replay", step: T - 3 });
  });

  it("when diagnosticWindows is 0 then T+3 matches nothing while T+1 still opens", () => {
    const p = profile(6);
    const m = new Matcher([client("alice", p)], opts({ diagnosticWindows: 0 }), T0_MS);
    const ds = knockAll(m, "198.18.0.1", deriveSequence(p, T + 3), T0_MS);
    expect(ds.some((d) => d.kind === "open" || d.kind === "refuse")).toBe(false);
    expect(last(knockAll(m, "198.18.0.2", deriveSequence(p, T + 1), T0_MS + 1000)).kind).toBe("open");
  });

  it("when skew is 0 then only step T opens and T+1 is a skew event", () => {
    const p = profile(7);
    const m = new Matcher([client("alice", p)], opts({ skewWindows: 0 }), T0_MS);
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T + 1), T0_MS))).toMatchObject({ kind: "refuse", reason: "skew", offsetWindows: 1 });
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T), T0_MS + 1000)).kind).toBe("open");
  });

  it("when the state starts fail-closed (last accepted = T + skew) then the current window is refused as a replay", () => {
    const p = profile(8);
    const m = new Matcher([client("alice", p, T + 1)], OPTIONS, T0_MS);
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T), T0_MS))).toMatchObject({ kind: "refuse", reason: "replay" });
    expect(last(knockAll(m, "198.18.0.1", deriveSequence(p, T + 1), T0_MS + 1000))).toMatchObject({ kind: "refuse", reason: "replay" });
  });
});

describe("matcher: progress per source", () => {
  it("when toleratedWrongKnocks wrong knocks come between every two ports then the sequence still opens", () => {
    const p = profile(10);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const W = OPTIONS.toleratedWrongKnocks;
    expect(W).toBeGreaterThan(0);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const wrong = unusedPorts(m, p, 3 * W);
    // The tolerance is per gap: 3W wrong knocks in all, W between each two ports.
    const stream = [a, ...wrong.slice(0, W), b, ...wrong.slice(W, 2 * W), c, ...wrong.slice(2 * W), d];
    const ds = stream.map((port, i) => knock(m, "198.18.0.1", port, T0_MS + i));
    expect(last(ds)).toMatchObject({ kind: "open", client: "alice", step: T });
    expect(ds.filter((x) => x.kind === "reset")).toEqual([]);
  });

  it("when one wrong knock more than tolerated comes in the middle then progress resets and the rest of the sequence opens nothing", () => {
    const p = profile(10);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const W = OPTIONS.toleratedWrongKnocks;
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const wrong = unusedPorts(m, p, W + 1);
    const ds = knockAll(m, "198.18.0.1", [a, b, ...wrong, c, d], T0_MS, 20);
    expect(ds.map((x) => x.kind)).toEqual(["progress", "progress", ...wrong.slice(1).map(() => "ignored"), "reset", "ignored", "ignored"]);
    // Starting again from the first port works.
    expect(last(knockAll(m, "198.18.0.1", [a, b, c, d], T0_MS + 2000)).kind).toBe("open");
  });

  it("when a sequence of a step that cannot open (only logged as skew) gets a wrong knock then it is dropped, as the window moves too", () => {
    const p = profile(17);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const [wrong] = unusedPorts(m, p, 1) as [number];
    const ahead = deriveSequence(p, T + 2) as [number, number, number, number];
    const withWrong = (ports: readonly number[]): number[] => [ports[0]!, ports[1]!, wrong, ports[2]!, ports[3]!];
    expect(knockAll(m, "198.18.0.1", withWrong(ahead), T0_MS).some((d) => d.kind === "refuse")).toBe(false);
    // One window later T+2 is a candidate: the same knocks open it.
    const later = stepStartMs(T + 1, 30) + 1000;
    expect(last(knockAll(m, "198.18.0.1", withWrong(ahead), later))).toMatchObject({ kind: "open", step: T + 2 });
    // And T-1, a candidate then, is no longer one now that T+1 is current.
    expect(knockAll(m, "198.18.0.2", withWrong(deriveSequence(p, T - 1)), later + 1000).some((d) => d.kind === "refuse")).toBe(false);
  });

  it("when toleratedWrongKnocks is 0 then a single wrong knock resets progress", () => {
    const p = profile(10);
    const m = new Matcher([client("alice", p)], opts({ toleratedWrongKnocks: 0 }), T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const ds = knockAll(m, "198.18.0.1", [a, b, unusedPort(m, p), c, d], T0_MS);
    expect(ds.map((x) => x.kind)).toEqual(["progress", "progress", "reset", "ignored", "ignored"]);
  });

  it("when spoofed knocks from the client's address hit random ports at 1000/s then at least 19 of 20 knocks 1.2 ms apart still open", () => {
    // The lab test (test/e2e/spoof.test.ts) does this with real packets; here the clock is fake and the flood
    // is Poisson, the worst case for a given rate: a smooth sender puts one spoofed knock in each 1 ms gap.
    const p = profile(19);
    const rnd = seeded(19);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const span = p.portMax - p.portMin + 1;
    let opened = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      // One knock per window (steps T..T+19), with the flood running from 50 ms before to 50 ms after it.
      const startMs = T0_MS + attempt * 30_000;
      const knocks = deriveSequence(p, T + attempt).map((port, i) => ({ port, atMs: startMs + i * 1.2 }));
      const events: { port: number; atMs: number }[] = [...knocks];
      for (let at = startMs - 50; at < startMs + 50;) {
        at += -Math.log(1 - rnd()); // exponential gaps, mean 1 ms
        events.push({ port: p.portMin + Math.floor(rnd() * span), atMs: at });
      }
      events.sort((x, y) => x.atMs - y.atMs);
      for (const e of events) if (knock(m, "198.18.0.1", e.port, e.atMs).kind === "open") opened++;
    }
    expect(opened).toBeGreaterThanOrEqual(19);
  });

  it("when every wrong knock is tolerated then each still counts as a failure for brute-force reporting", () => {
    const p = profile(9);
    const m = new Matcher([client("alice", p)], opts({ bruteForce: { maxFailuresPerMinute: 3 } as MatcherOptions["bruteForce"] }), T0_MS);
    const W = OPTIONS.toleratedWrongKnocks;
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const wrong = unusedPorts(m, p, W);
    const ds = knockAll(m, "198.18.0.1", [a, ...wrong, b, c, d], T0_MS, 10);
    expect(ds.filter((x) => x.kind === "bruteforce")).toEqual([{ kind: "bruteforce", src: "198.18.0.1", failures: 4, banned: false }]);
    expect(ds.filter((x) => x.kind === "reset")).toEqual([]);
  });

  it("when one source sweeps the whole range in ascending order then nothing opens", () => {
    const p = profile(11, { portMin: 20000, portMax: 20999, exclude: [] });
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    let opened = 0;
    for (let port = p.portMin; port <= p.portMax; port++) if (knock(m, "198.18.0.66", port, T0_MS + (port - p.portMin)).kind === "open") opened++;
    expect(opened).toBe(0);
  });

  it("when a knock is retransmitted within retransmitMs then it is ignored and the sequence still opens", () => {
    const p = profile(12);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const t = T0_MS;
    const ds = [
      knock(m, "s", a, t),
      knock(m, "s", a, t + 1000),
      knock(m, "s", b, t + 1100),
      knock(m, "s", b, t + 3100),
      knock(m, "s", c, t + 3200),
      knock(m, "s", d, t + 3300),
    ];
    expect(ds.map((x) => x.kind)).toEqual(["progress", "ignored", "progress", "ignored", "progress", "open"]);
    expect(m.stats().retransmits).toBe(2);
  });

  it("when a port is repeated after the retransmission window then it restarts the sequence", () => {
    const p = profile(13);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const t = T0_MS;
    expect(knock(m, "s", a, t).kind).toBe("progress");
    // A wrong knock for the first attempt (which wanted b, and survives it) that starts the sequence again.
    expect(knock(m, "s", a, t + 4000).kind).toBe("progress");
    expect(last(knockAll(m, "s", [b, c, d], t + 4200)).kind).toBe("open");
  });

  it("when the gap between knocks exceeds knockTimeoutMs then progress is abandoned", () => {
    const p = profile(14);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const t = T0_MS;
    knockAll(m, "s", [a, b], t);
    const ds = [knock(m, "s", c, t + 200 + 5001), knock(m, "s", d, t + 200 + 5100)];
    expect(ds.some((x) => x.kind === "open")).toBe(false);
    // Exactly the timeout is still in time.
    knockAll(m, "u", [a, b], t);
    expect(last([knock(m, "u", c, t + 200 + 5000), knock(m, "u", d, t + 200 + 5100)]).kind).toBe("open");
  });

  it("when a packet is outside every knock range then it is ignored and no source state is created", () => {
    const p = profile(15, { portMin: 20000, portMax: 20999 });
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    for (const port of [22, 19999, 21000, 65535, 0, 70000]) expect(knock(m, "198.18.0.1", port, T0_MS)).toEqual({ kind: "ignored" });
    expect(m.stats().sources).toBe(0);
  });

  it("when a UDP client's sequence is knocked over TCP then it does not open, and over UDP it does", () => {
    const p = profile(16, { proto: "udp" });
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const seq = deriveSequence(p, T);
    expect(knockAll(m, "s", seq, T0_MS, 200, "tcp").some((d) => d.kind === "open")).toBe(false);
    expect(last(knockAll(m, "s", seq, T0_MS + 1000, 200, "udp")).kind).toBe("open");
  });

  it("when two clients have different periods then each one's current step is its own", () => {
    const p30 = profile(17, { periodSeconds: 30 });
    const p60 = profile(18, { periodSeconds: 60 });
    // 10 s into a 60 s step; 25 s later the 30 s client has crossed a boundary and the 60 s client has not.
    const start = stepStartMs(stepAt(T0_MS, 60), 60) + 10_000;
    const m = new Matcher([client("a30", p30), client("a60", p60)], OPTIONS, start);
    const s30 = stepAt(start, 30);
    const s60 = stepAt(start, 60);
    expect(m.currentStep("a30")).toBe(s30);
    expect(m.currentStep("a60")).toBe(s60);
    const later = start + 25_000;
    expect(last(knockAll(m, "x", deriveSequence(p30, s30 + 2), later))).toMatchObject({ kind: "open", client: "a30", step: s30 + 2 });
    expect(last(knockAll(m, "y", deriveSequence(p60, s60 + 2), later))).toMatchObject({ kind: "refuse", reason: "skew", client: "a60", offsetWindows: 2 });
    expect(m.currentStep("a30")).toBe(s30 + 1);
    expect(m.currentStep("a60")).toBe(s60);
  });
});

describe("matcher: bounded state", () => {
  it("when the table is full then a source not seen again is evicted and a recently seen one survives", () => {
    const p = profile(20);
    const m = new Matcher([client("alice", p)], opts({ maxSources: 3 }), T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    const t = T0_MS;
    knock(m, "A", a, t);
    knock(m, "B", a, t + 10);
    knock(m, "C", a, t + 20);
    knock(m, "A", b, t + 30); // A seen again
    knock(m, "D", a, t + 40); // table full: evicts B or C, never A
    expect(m.stats()).toMatchObject({ sources: 3, evictions: 1 });
    expect(last([knock(m, "A", c, t + 50), knock(m, "A", d, t + 60)]).kind).toBe("open");
  });

  it("when an evicted source continues its sequence then it has to start over", () => {
    const p = profile(21);
    const m = new Matcher([client("alice", p)], opts({ maxSources: 2 }), T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    knockAll(m, "victim", [a, b], T0_MS);
    // Knocking twice gave the victim a second chance; a few more newcomers use it up.
    for (let i = 0; i < 4; i++) knock(m, `other${i}`, a, T0_MS + 500 + i);
    expect(m.stats().evictions).toBe(3);
    expect(knockAll(m, "victim", [c, d], T0_MS + 700).some((x) => x.kind === "open")).toBe(false);
  });

  it("when a spoofed flood comes from many sources then the tracked sources stay at maxSources and a real knock still opens", () => {
    const p = profile(22);
    const m = new Matcher([client("alice", p)], opts({ maxSources: 100 }), T0_MS);
    const seq = deriveSequence(p, T);
    let i = 0;
    const flood = (n: number, at: number): void => {
      for (let j = 0; j < n; j++, i++) knock(m, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 10000 + ((i * 7919) % 50000), at);
    };
    knock(m, "real", seq[0]!, T0_MS);
    flood(20, T0_MS + 50);
    knock(m, "real", seq[1]!, T0_MS + 100);
    flood(50, T0_MS + 150);
    knock(m, "real", seq[2]!, T0_MS + 200);
    flood(10_000, T0_MS + 250);
    expect(m.stats().sources).toBeLessThanOrEqual(100);
    // Under a flood larger than the table the real source may lose its progress, but a fresh attempt works.
    expect(last(knockAll(m, "real", seq, T0_MS + 1000)).kind).toBe("open");
  });
});

describe("matcher: brute force", () => {
  const failOnce = (m: Matcher, src: string, a: number, wrong: number, at: number): Decision[] => [knock(m, src, a, at), knock(m, src, wrong, at + 10)];

  it("when a source fails more than maxFailuresPerMinute sequences then it is reported once per minute, without a ban by default", () => {
    const p = profile(30);
    const m = new Matcher([client("alice", p)], opts({ bruteForce: { maxFailuresPerMinute: 3 } as MatcherOptions["bruteForce"] }), T0_MS);
    const seq = deriveSequence(p, T);
    const wrong = unusedPort(m, p);
    const reports: Decision[] = [];
    for (let i = 0; i < 10; i++) reports.push(...failOnce(m, "evil", seq[0]!, wrong, T0_MS + i * 100).filter((d) => d.kind === "bruteforce"));
    expect(reports).toEqual([{ kind: "bruteforce", src: "evil", failures: 4, banned: false }]);
    // A new minute, a new report once the threshold is crossed again.
    for (let i = 0; i < 5; i++) reports.push(...failOnce(m, "evil", seq[0]!, wrong, T0_MS + 61_000 + i * 100).filter((d) => d.kind === "bruteforce"));
    expect(reports).toHaveLength(2);
    // No ban: the source's valid knock still opens.
    const now = T0_MS + 62_000;
    expect(last(knockAll(m, "evil", deriveSequence(p, stepAt(now, 30)), now)).kind).toBe("open");
  });

  it("when a new source sweeps the range without starting any sequence then it is reported as brute force and nothing opens", () => {
    const p = profile(33);
    const m = new Matcher([client("alice", p)], opts({ bruteForce: { maxFailuresPerMinute: 10 } as MatcherOptions["bruteForce"] }), T0_MS);
    const firsts = new Set(m.tableSnapshot().map((line) => Number(line.split(" ")[2]!.split(",")[0])));
    const sweep: number[] = [];
    for (let port = p.portMin; sweep.length < 50; port++) if (!firsts.has(port)) sweep.push(port);
    const decisions = sweep.map((port, i) => knock(m, "198.18.0.3", port, T0_MS + i * 5));
    expect(decisions.filter((d) => d.kind === "bruteforce")).toEqual([{ kind: "bruteforce", src: "198.18.0.3", failures: 11, banned: false }]);
    expect(decisions.some((d) => d.kind === "open")).toBe(false);
  });

  it("when ban is on then the reported source's complete match is refused as a lockout until banSeconds pass", () => {
    const p = profile(31);
    const m = new Matcher([client("alice", p)], opts({ bruteForce: { maxFailuresPerMinute: 2, ban: true, banSeconds: 60 } }), T0_MS);
    const wrong = unusedPort(m, p);
    const first = deriveSequence(p, T)[0]!;
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) kinds.push(...failOnce(m, "evil", first, wrong, T0_MS + i * 100).map((d) => d.kind));
    expect(kinds).toContain("bruteforce");
    expect(last(knockAll(m, "evil", deriveSequence(p, T), T0_MS + 1000))).toMatchObject({ kind: "refuse", reason: "lockout", client: "alice", step: T });
    // Another source is not affected, and the lockout burned nothing.
    expect(last(knockAll(m, "good", deriveSequence(p, T), T0_MS + 2000)).kind).toBe("open");
    const after = T0_MS + 61_000;
    const stepAfter = stepAt(after, 30);
    expect(last(knockAll(m, "evil", deriveSequence(p, stepAfter), after))).toMatchObject({ kind: "open", step: stepAfter });
  });

  it("when a refusal crosses the threshold then the refusal is returned and the report follows on the next knock", () => {
    const p = profile(32);
    const m = new Matcher([client("alice", p, T + 1)], opts({ bruteForce: { maxFailuresPerMinute: 1 } as MatcherOptions["bruteForce"] }), T0_MS);
    const seq = deriveSequence(p, T);
    expect(last(knockAll(m, "r", seq, T0_MS)).kind).toBe("refuse");
    expect(last(knockAll(m, "r", seq, T0_MS + 4000)).kind).toBe("refuse"); // failure 2 > 1: report pending
    expect(knock(m, "r", seq[0]!, T0_MS + 8000)).toEqual({ kind: "bruteforce", src: "r", failures: 2, banned: false });
  });
});

describe("matcher: tables", () => {
  it("when a client is removed then its sequences leave the table and progress through them dies", () => {
    const pa = profile(40);
    const pb = profile(41);
    const m = new Matcher([client("alice", pa), client("bob", pb)], OPTIONS, T0_MS);
    expect(m.tableSnapshot().filter((l) => l.startsWith("bob ")).length).toBe(21);
    const seq = deriveSequence(pb, T);
    knockAll(m, "s", seq.slice(0, 2), T0_MS);
    m.setClients([client("alice", pa)], T0_MS + 500);
    expect(m.tableSnapshot().some((l) => l.startsWith("bob "))).toBe(false);
    expect(knockAll(m, "s", seq.slice(2), T0_MS + 600).some((d) => d.kind === "open")).toBe(false);
    expect(m.lastAcceptedStep("bob")).toBeUndefined();
  });

  it("when clients are reloaded unchanged then progress and the higher last accepted step are kept", () => {
    const p = profile(42);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    expect(last(knockAll(m, "s", deriveSequence(p, T - 1), T0_MS)).kind).toBe("open");
    const seq = deriveSequence(p, T);
    knockAll(m, "s", seq.slice(0, 2), T0_MS + 1000);
    const derivations = m.stats().derivations;
    m.setClients([client("alice", p, T - 5)], T0_MS + 1500);
    expect(m.stats().derivations).toBe(derivations);
    expect(m.lastAcceptedStep("alice")).toBe(T - 1);
    expect(last(knockAll(m, "s", seq.slice(2), T0_MS + 1600)).kind).toBe("open");
  });

  it("when a client's secret changes on reload then its old sequences stop matching", () => {
    const old = profile(43);
    const m = new Matcher([client("alice", old)], OPTIONS, T0_MS);
    m.setClients([client("alice", profile(44))], T0_MS + 100);
    expect(knockAll(m, "s", deriveSequence(old, T), T0_MS + 200).some((d) => d.kind === "open")).toBe(false);
    expect(last(knockAll(m, "s", deriveSequence(profile(44), T), T0_MS + 2000)).kind).toBe("open");
  });

  it("when the clock crosses a boundary then one step per client is derived, not the whole window", () => {
    const p = profile(45);
    const m = new Matcher([client("alice", p), client("bob", profile(46))], OPTIONS, T0_MS);
    expect(m.stats()).toMatchObject({ sequences: 42, derivations: 42 });
    m.tick(T0_MS + 30_000);
    expect(m.stats()).toMatchObject({ sequences: 42, derivations: 44 });
    expect(m.currentStep("alice")).toBe(T + 1);
    expect(m.tableSnapshot()).toEqual(new Matcher([client("alice", p), client("bob", profile(46))], OPTIONS, T0_MS + 30_000).tableSnapshot());
  });

  it("when a client list has a duplicate name then setClients throws and changes nothing", () => {
    const m = new Matcher([client("alice", profile(47))], OPTIONS, T0_MS);
    expect(() => m.setClients([client("bob", profile(48)), client("bob", profile(49))], T0_MS)).toThrow(
      expect.objectContaining({ code: "TKNOCK_INVALID_CLIENTS" }),
    );
    expect(m.stats().clients).toBe(1);
  });

  it("when knocks arrive with a non-finite time then they are ignored", () => {
    const m = new Matcher([client("alice", profile(50))], OPTIONS, T0_MS);
    expect(knock(m, "s", 20000, Number.NaN)).toEqual({ kind: "ignored" });
  });

  it("when random knock streams cross many step boundaries then incremental tables decide exactly like full rebuilds", () => {
    // Tiny ranges and short sequences, so random knocks complete sequences (opens, replays, skews) often.
    const clients: MatcherClient[] = [
      client("a", profile(60, { periodSeconds: 10, knocks: 2, portMin: 20000, portMax: 20005, exclude: [20003] })),
      client("b", profile(61, { periodSeconds: 20, knocks: 2, portMin: 20002, portMax: 20007, exclude: [] })),
      client("c", profile(62, { periodSeconds: 30, knocks: 3, portMin: 20000, portMax: 20004, exclude: [], proto: "udp" })),
    ];
    const event = fc.record({
      dtMs: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 1500 }), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 40_000 }), weight: 1 }),
      src: fc.constantFrom("s1", "s2", "s3"),
      port: fc.integer({ min: 19999, max: 20008 }),
      proto: fc.constantFrom<KnockProto>("tcp", "tcp", "udp"),
    });
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 300 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 4 }), (events, skew, diag) => {
        const o = opts({ skewWindows: skew, diagnosticWindows: diag, bruteForce: { maxFailuresPerMinute: 2, ban: true, banSeconds: 30 } });
        const incremental = new Matcher(clients, o, T0_MS);
        const rebuilt = new Matcher(clients, o, T0_MS, { incrementalTables: false });
        let t = T0_MS;
        for (const e of events) {
          t += e.dtMs;
          const k = { src: e.src, dstPort: e.port, proto: e.proto, atMs: t };
          expect(incremental.onKnock(k)).toEqual(rebuilt.onKnock(k));
        }
        expect(incremental.tableSnapshot()).toEqual(rebuilt.tableSnapshot());
        expect(incremental.tableSnapshot()).toEqual(new Matcher(clients, o, t).tableSnapshot());
        for (const c of clients) expect(incremental.lastAcceptedStep(c.name)).toBe(rebuilt.lastAcceptedStep(c.name));
      }),
      { numRuns: 150 },
    );
  });
});
