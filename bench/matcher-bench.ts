/**
 * Part 1a: the matcher alone, on one core (this process's main thread), no I/O. 1M packets: noise from 100k
 * sources to random ports of the knock range, with 1000 valid 4-knock sequences interleaved (each knock's packets
 * 37 packets apart, so other sources' noise falls between them). Run with 100, 1k and 10k enrolled clients.
 * Baseline, same packets, same run: a loop that only reads each packet's port, protocol and source.
 */
import { randomBytes } from "node:crypto";
import type { ObservedKnock } from "../src/ports.js";
import { deriveSequence } from "../src/protocol/derive.js";
import type { KnockProfile } from "../src/protocol/profile.js";
import { stepAt, stepStartMs } from "../src/protocol/window.js";
import { defaultServerConfig } from "../server/config/schema.js";
import type { DecisionKind } from "../server/matcher/decision.js";
import { Matcher, type MatcherClient } from "../server/matcher/matcher.js";
import { matcherOptionsFromConfig, type MatcherOptions } from "../server/matcher/options.js";
import { formatProfile, profileSync, type ProfileSummary } from "./profile-summary.js";
import { median } from "./stats.js";
import { seededRandom } from "./synthetic.js";

export const KNOCK_RANGE = { min: 10000, max: 59999 } as const;
const PERIOD_SECONDS = 30;
const KNOCKS = 4;
const PROTECT = 2222;

/** The daemon's defaults. */
export const DEFAULT_MATCHER_OPTIONS: MatcherOptions = matcherOptionsFromConfig(defaultServerConfig({ clientsFile: "/dev/null" }));

export function makeClients(count: number): MatcherClient[] {
  const clients: MatcherClient[] = [];
  for (let i = 0; i < count; i++) {
    const profile: KnockProfile = {
      secret: randomBytes(32),
      periodSeconds: PERIOD_SECONDS,
      knocks: KNOCKS,
      portMin: KNOCK_RANGE.min,
      portMax: KNOCK_RANGE.max,
      exclude: [PROTECT],
      proto: "tcp",
    };
    clients.push({ name: `c${i}`, profile, open: [PROTECT], lastAcceptedStep: undefined });
  }
  return clients;
}

/** A fixed instant 1 s into a window, so 25 s of simulated packets never cross a window boundary. */
export function benchEpochMs(): number {
  const fixed = 1_760_000_000_000;
  return stepStartMs(stepAt(fixed, PERIOD_SECONDS), PERIOD_SECONDS) + 1000;
}

export type MatcherWorkload = { knocks: ObservedKnock[]; validSequences: number; noiseSources: number; startMs: number };

export function buildWorkload(
  clients: readonly MatcherClient[],
  opts: { packets: number; noiseSources: number; validSequences: number; seed: number },
): MatcherWorkload {
  const rnd = seededRandom(opts.seed);
  const startMs = benchEpochMs();
  const step = stepAt(startMs, PERIOD_SECONDS);
  const spanMs = 25_000;
  const srcs: string[] = [];
  for (let i = 0; i < opts.noiseSources; i++) srcs.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const portSpan = KNOCK_RANGE.max - KNOCK_RANGE.min + 1;
  const knocks: ObservedKnock[] = new Array<ObservedKnock>(opts.packets);
  const atMs = (i: number): number => startMs + (i * spanMs) / opts.packets;
  for (let i = 0; i < opts.packets; i++) {
    knocks[i] = { src: srcs[Math.floor(rnd() * srcs.length)]!, dstPort: KNOCK_RANGE.min + Math.floor(rnd() * portSpan), proto: "tcp", atMs: atMs(i) };
  }
  // Valid sequences overwrite noise slots; sequence v uses client v mod N (so with 100 clients, 900 are replays).
  // Each sequence gets its own slice of the stream; its 4 packets are spread inside it (37 apart at 1M packets).
  const slice = Math.floor(opts.packets / opts.validSequences);
  const gap = Math.max(1, Math.min(37, Math.floor(slice / KNOCKS)));
  for (let v = 0; v < opts.validSequences; v++) {
    const c = clients[v % clients.length]!;
    const ports = deriveSequence(c.profile, step);
    const base = v * slice;
    const src = `172.16.${v >> 8}.${v & 255}`;
    ports.forEach((port, k) => {
      const i = base + k * gap;
      knocks[i] = { src, dstPort: port, proto: "tcp", atMs: atMs(i) };
    });
  }
  return { knocks, validSequences: opts.validSequences, noiseSources: opts.noiseSources, startMs };
}

export type MatcherRow = {
  clients: number;
  /** Building the matcher (HMAC-deriving clients x 21 windows), not included in packets/s. */
  setupMs: number;
  runsPps: number[];
  pps: number;
  baselinePps: number;
  /** matcher / baseline: the share of a bare loop's speed the matcher keeps. */
  ratioToBaseline: number;
  decisions: Record<DecisionKind, number>;
  sourcesAtEnd: number;
  evictions: number;
};

export type MatcherResult = { packets: number; noiseSources: number; validSequences: number; rows: MatcherRow[]; profile?: ProfileSummary };

function runMatcher(clients: readonly MatcherClient[], w: MatcherWorkload): { pps: number; matcher: Matcher; setupMs: number } {
  const t0 = performance.now();
  const matcher = new Matcher(clients, DEFAULT_MATCHER_OPTIONS, w.startMs);
  const t1 = performance.now();
  const knocks = w.knocks;
  for (let i = 0; i < knocks.length; i++) matcher.onKnock(knocks[i]!);
  const t2 = performance.now();
  return { pps: knocks.length / ((t2 - t1) / 1000), matcher, setupMs: t1 - t0 };
}

let sink = 0;
function runBaseline(w: MatcherWorkload): number {
  const knocks = w.knocks;
  const t0 = performance.now();
  let acc = 0;
  for (let i = 0; i < knocks.length; i++) {
    const k = knocks[i]!;
    if (k.dstPort >= KNOCK_RANGE.min && k.dstPort <= KNOCK_RANGE.max && k.proto === "tcp") acc += k.src.length;
  }
  const t1 = performance.now();
  sink += acc;
  return knocks.length / ((t1 - t0) / 1000);
}

export function benchMatcher(
  opts: { packets?: number; clientCounts?: readonly number[]; repeats?: number; profile?: boolean; log?: (line: string) => void } = {},
): MatcherResult {
  const packets = opts.packets ?? 1_000_000;
  const noiseSources = 100_000;
  const validSequences = Math.min(1000, Math.floor(packets / 100));
  const repeats = opts.repeats ?? 5;
  const log = opts.log ?? (() => {});
  const rows: MatcherRow[] = [];
  let profile: ProfileSummary | undefined;
  for (const count of opts.clientCounts ?? [100, 1000, 10_000]) {
    const clients = makeClients(count);
    const w = buildWorkload(clients, { packets, noiseSources, validSequences, seed: 42 });
    runMatcher(clients, w); // warm-up: let the JIT settle before timing
    runBaseline(w);
    const runs: number[] = [];
    const baselines: number[] = [];
    let last: ReturnType<typeof runMatcher> | undefined;
    for (let r = 0; r < repeats; r++) {
      last = runMatcher(clients, w);
      runs.push(last.pps);
      baselines.push(runBaseline(w));
    }
    const stats = last!.matcher.stats();
    const row: MatcherRow = {
      clients: count,
      setupMs: last!.setupMs,
      runsPps: runs,
      pps: median(runs),
      baselinePps: median(baselines),
      ratioToBaseline: median(runs) / median(baselines),
      decisions: stats.decisions,
      sourcesAtEnd: stats.sources,
      evictions: stats.evictions,
    };
    rows.push(row);
    if (opts.profile === true && count === Math.max(...(opts.clientCounts ?? [100, 1000, 10_000]))) {
      // An extra, untimed pass under the profiler: where one packet's time goes with the most clients.
      const m = new Matcher(clients, DEFAULT_MATCHER_OPTIONS, w.startMs);
      profile = profileSync(`matcher, ${count} clients`, () => {
        for (let i = 0; i < w.knocks.length; i++) m.onKnock(w.knocks[i]!);
      });
      log(formatProfile(profile, `matcher profile, ${count} clients`));
    }
    log(
      `matcher: ${count} clients: ${(row.pps / 1e6).toFixed(2)} M pkt/s (baseline ${(row.baselinePps / 1e6).toFixed(1)} M), opens ${stats.decisions.open}, refusals ${stats.decisions.refuse}`,
    );
  }
  if (sink === -1) log("");
  return { packets, noiseSources, validSequences, rows, ...(profile ? { profile } : {}) };
}
