/**
 * The knock matcher: pure (no I/O; time comes only from knock.atMs or an explicit nowMs). It turns observed
 * packets into decisions; the daemon acts on them (persist the accepted step, then open; record refusals).
 *
 * Rules (docs/protocol.md "Acceptance rule", issue 3 "Matcher"):
 * - Per client, steps T-D..T+D (D = max(diagnosticWindows, skewWindows), T = the client's own step) are derived
 *   ahead of time and indexed by first port (SequenceTable); window moves derive one new step per client.
 * - Per source, progress through candidate sequences in order. Each sequence in progress survives up to
 *   W = toleratedWrongKnocks knocks on watched ports (some client's range, not excluded by that client) that are
 *   not its next port, counted since it last advanced; the next one drops it. So a few spoofed knocks landing
 *   between a client's knocks do not undo them, while a source sweeping the range lands thousands of wrong knocks
 *   between two ports of any sequence and completes none (docs/protocol.md 6.2 and 9). A knock that is the first
 *   port of a sequence starts it, whatever it does to the others.
 * - A repeat of the source's previous port within retransmitMs is a retransmission (TCP SYN retry, duplicated
 *   UDP datagram) and is ignored. A gap over knockTimeoutMs abandons progress (not counted as a failure).
 * - A completed step x of client c: replay if x <= lastAccepted(c) (RFC 6238 section 5.2: a step is accepted
 *   once, and monotonic per client); else open if |x - T| <= skewWindows; else skew, offsetWindows = x - T
 *   (positive: the client's clock is ahead). Steps beyond D never match at all (D = 0 and s = 0: only T).
 */
import { TknockError } from "../src/errors.js";
import type { ObservedKnock } from "../src/ports.js";
import { validateProfile, type KnockProfile } from "../src/protocol/profile.js";
import type { ServerConfig } from "./config/schema.js";
import { SequenceTable, type Sequence, type TrackedClient } from "./matcher/sequence-table.js";
import { INLINE_STARTS, START_WORDS, type StartTable } from "./matcher/start-table.js";
import {
  F_BANNED_UNTIL_MS,
  F_FAIL_WINDOW_START_MS,
  F_LAST_AT_MS,
  F_REPORTED_WINDOW_START_MS,
  FLAG_RECENT,
  FLAG_REPORT_PENDING,
  I_ACTIVE,
  I_FAILURES,
  I_FLAGS,
  I_LAST_PORT,
  I_PROGRESS,
  INLINE_PAIRS,
  MISS_UNIT,
  RECORD_DOUBLES,
  RECORD_WORDS,
  SourceTable,
  WANTED_PORT_MASK,
} from "./matcher/source-table.js";

export type MatcherOptions = {
  readonly skewWindows: number;
  readonly diagnosticWindows: number;
  readonly knockTimeoutMs: number;
  readonly retransmitMs: number;
  /** W: wrong knocks a sequence in progress survives between two of its ports (0: the first one drops it). */
  readonly toleratedWrongKnocks: number;
  readonly maxSources: number;
  readonly bruteForce: { readonly maxFailuresPerMinute: number; readonly ban: boolean; readonly banSeconds: number };
};

/** Knobs that are not configuration; the defaults suit the daemon. */
export type MatcherTuning = {
  /** false re-derives a client's whole window at each step (only to check the incremental path in tests). */
  readonly incrementalTables?: boolean;
  /** Sequences one source may be part-way through at once; starts beyond it are dropped (counted). */
  readonly maxProgressPerSource?: number;
};

export type MatcherClient = {
  readonly name: string;
  readonly profile: KnockProfile;
  /** Ports to open on an accepted knock. */
  readonly open: readonly number[];
  readonly lastAcceptedStep: number | undefined;
  /** Future steps spent by earlier skew refusals (from the state file), refused as replays. */
  readonly spentSteps?: readonly number[];
};

export type RefuseReason = "replay" | "skew" | "lockout";

/**
 * What one knock did. onKnock returns exactly one; when a knock has several outcomes the most important wins:
 * open / refuse  >  bruteforce  >  reset  >  progress  >  ignored.
 * A brute-force report that an open/refuse outranks stays pending and replaces the source's next lesser
 * decision, so every crossing of the threshold is reported exactly once (the ban itself applies at once).
 */
export type Decision =
  /** Outside every knock range, a retransmission, a malformed time, or a knock that neither starts nor continues anything. */
  | { readonly kind: "ignored" }
  /** Started or continued at least one sequence. */
  | { readonly kind: "progress"; readonly src: string }
  /**
   * The source was part-way through sequences, this knock continued none, and it was one wrong knock too many for
   * every one of them: nothing is left in progress (a failed attempt). A wrong knock that some sequence survives
   * (toleratedWrongKnocks) is "ignored", or "progress" if it starts one; it counts as a failure all the same.
   */
  | { readonly kind: "reset"; readonly src: string }
  /** Accepted: the matcher has already set the client's last accepted step; persist it, then open. */
  | {
      readonly kind: "open";
      readonly client: string;
      readonly step: number;
      readonly src: string;
      readonly ports: number[];
      readonly open: readonly number[];
    }
  | {
      readonly kind: "refuse";
      readonly reason: RefuseReason;
      readonly client: string;
      readonly step: number;
      readonly src: string;
      readonly ports: number[];
      /** skew only: x - T in windows; positive = the client's clock is ahead. */
      readonly offsetWindows?: number;
    }
  /** More than maxFailuresPerMinute failed sequences from one source in a minute; reported once per minute. */
  | { readonly kind: "bruteforce"; readonly src: string; readonly failures: number; readonly banned: boolean };

export type DecisionKind = Decision["kind"];

export type MatcherStats = {
  clients: number;
  sources: number;
  maxSources: number;
  /** Sequences in the first-port table (clients x (2D+1)). */
  sequences: number;
  /** HMAC derivations done so far (construction, reloads, window moves). */
  derivations: number;
  derivationErrors: number;
  evictions: number;
  retransmits: number;
  /** Sequence starts dropped because a source already had maxProgressPerSource in progress. */
  progressOverflow: number;
  decisions: Record<DecisionKind, number>;
};

const MINUTE_MS = 60_000;

/** Lower is preferred when one knock completes several sequences (only possible with tiny ranges). */
const Verdict = { open: 0, lockout: 1, skew: 2, replay: 3, none: 4 } as const;
type Verdict = (typeof Verdict)[keyof typeof Verdict];
const DEFAULT_MAX_PROGRESS = 64;
/** The miss count shares a word with the wanted port (MISS_UNIT); PURGED_WANTED must stay above any limit. */
const MAX_TOLERATED_WRONG_KNOCKS = 1000;

/** The matcher options of a server config (same field names). */
export function matcherOptionsFromConfig(c: ServerConfig): MatcherOptions {
  return pickOptions(c);
}

function pickOptions(c: MatcherOptions): MatcherOptions {
  return {
    skewWindows: c.skewWindows,
    diagnosticWindows: c.diagnosticWindows,
    knockTimeoutMs: c.knockTimeoutMs,
    retransmitMs: c.retransmitMs,
    toleratedWrongKnocks: c.toleratedWrongKnocks,
    maxSources: c.maxSources,
    bruteForce: { maxFailuresPerMinute: c.bruteForce.maxFailuresPerMinute, ban: c.bruteForce.ban, banSeconds: c.bruteForce.banSeconds },
  };
}

export class Matcher {
  private readonly options: MatcherOptions;
  private readonly table: SequenceTable;
  private readonly sources: SourceTable;
  private readonly maxProgress: number;
  // Hot-path copies of options (one field load instead of two per packet).
  private readonly retransmitMs: number;
  private readonly knockTimeoutMs: number;
  /** A wanted word below it has missed fewer than W knocks, so it survives one more (W * MISS_UNIT). */
  private readonly missLimit: number;
  private readonly watched: Uint8Array;
  private readonly startsTcp: StartTable;
  private readonly startsUdp: StartTable;
  private clients = new Map<string, TrackedClient>();
  private retransmits = 0;
  private progressOverflow = 0;
  private readonly counts: Record<DecisionKind, number> = { ignored: 0, progress: 0, reset: 0, open: 0, refuse: 0, bruteforce: 0 };

  constructor(clients: readonly MatcherClient[], options: MatcherOptions, nowMs: number, tuning: MatcherTuning = {}) {
    checkOptions(options);
    // Pick the fields: the daemon may pass its whole ServerConfig.
    this.options = pickOptions(options);
    this.table = new SequenceTable(
      Math.max(options.diagnosticWindows, options.skewWindows),
      tuning.incrementalTables ?? true,
      options.skewWindows,
      options.toleratedWrongKnocks * MISS_UNIT,
    );
    this.maxProgress = tuning.maxProgressPerSource ?? DEFAULT_MAX_PROGRESS;
    this.sources = new SourceTable(options.maxSources, this.maxProgress);
    this.retransmitMs = options.retransmitMs;
    this.knockTimeoutMs = options.knockTimeoutMs;
    this.missLimit = options.toleratedWrongKnocks * MISS_UNIT;
    this.watched = this.table.watched;
    this.startsTcp = this.table.startsTcp;
    this.startsUdp = this.table.startsUdp;
    this.setClients(clients, nowMs);
  }

  /**
   * Replaces the client list (reload). Clients whose name and profile are unchanged keep their derived
   * sequences, their sources' progress and the higher of the given and the known last accepted step; new or
   * changed clients are derived afresh; removed ones lose their sequences and every source's progress in them.
   * Throws TknockError (TKNOCK_INVALID_CLIENTS) on a duplicate name or an invalid profile, changing nothing.
   */
  setClients(clients: readonly MatcherClient[], nowMs: number): void {
    const seen = new Set<string>();
    for (const c of clients) {
      if (seen.has(c.name)) throw new TknockError("TKNOCK_INVALID_CLIENTS", `client ${c.name} is listed twice`);
      seen.add(c.name);
      validateProfile(c.profile);
    }
    const next = new Map<string, TrackedClient>();
    for (const c of clients) {
      const known = this.clients.get(c.name);
      if (known !== undefined && sameProfile(known.profile, c.profile)) {
        known.open = [...c.open];
        if (c.lastAcceptedStep !== undefined && (known.lastAccepted === undefined || c.lastAcceptedStep > known.lastAccepted)) {
          known.lastAccepted = c.lastAcceptedStep;
        }
        for (const x of c.spentSteps ?? []) if (!known.burned.includes(x)) known.burned.push(x);
        next.set(c.name, known);
      } else {
        const tracked = this.table.newClient(c.name, c.profile, [...c.open], c.lastAcceptedStep);
        tracked.burned = [...(c.spentSteps ?? [])];
        next.set(c.name, tracked);
      }
    }
    for (const old of this.clients.values()) if (next.get(old.name) !== old) this.table.removeClient(old);
    for (const c of next.values()) if (c.step < 0) this.table.addClient(c, nowMs);
    this.clients = next;
    this.table.recomputeWatched();
    this.table.recomputeNextBoundary();
    this.advance(nowMs);
  }

  /** Moves windows whose step boundary has passed; the daemon calls it from a timer so no packet pays for it. */
  tick(nowMs: number): void {
    this.advance(nowMs);
  }

  lastAcceptedStep(client: string): number | undefined {
    return this.clients.get(client)?.lastAccepted;
  }

  /** Future steps of the client spent by skew refusals (persist them: they must stay refused after a restart). */
  spentSteps(client: string): readonly number[] {
    return [...(this.clients.get(client)?.burned ?? [])];
  }

  /** The client's current step T as the matcher sees it (undefined for an unknown client). */
  currentStep(client: string): number | undefined {
    const c = this.clients.get(client);
    return c === undefined || c.step < 0 ? undefined : c.step;
  }

  stats(): MatcherStats {
    return {
      clients: this.clients.size,
      sources: this.sources.size,
      maxSources: this.sources.capacity,
      sequences: this.table.size,
      derivations: this.table.derivations,
      derivationErrors: this.table.derivationErrors,
      evictions: this.sources.evictions,
      retransmits: this.retransmits,
      progressOverflow: this.progressOverflow,
      decisions: { ...this.counts },
    };
  }

  /** Every live sequence as "client step ports", sorted (for tests and debugging; never contains a secret). */
  tableSnapshot(): string[] {
    return this.table.snapshot();
  }

  onKnock(k: ObservedKnock): Decision {
    const at = k.atMs;
    if (!(at < this.table.nextBoundaryMs)) {
      if (!Number.isFinite(at)) return this.ignored();
      this.advance(at);
    }
    const port = k.dstPort;
    if (this.watched[port] !== 1) return this.ignored();
    const src = k.src;
    const st = this.sources;
    const keyKind = st.keyOf(k);
    let slot = st.find(keyKind, src);
    let i32 = st.i32;
    let had = 0;
    if (slot >= 0) {
      const b = slot * RECORD_WORDS;
      i32[b + I_FLAGS]! |= FLAG_RECENT;
      const lastAtMs = st.f64[slot * RECORD_DOUBLES + F_LAST_AT_MS]!;
      if (port === i32[b + I_LAST_PORT] && at - lastAtMs <= this.retransmitMs) {
        this.retransmits++;
        return this.lesser(slot, src, undefined);
      }
      had = i32[b + I_ACTIVE]!;
      if (had > 0 && at - lastAtMs > this.knockTimeoutMs) {
        i32[b + I_ACTIVE] = 0;
        had = 0;
      }
    }

    // Continue: advance the sequences whose next port this is, keep the others that may miss one more knock,
    // compacting in place.
    let continued = 0;
    let tolerated = 0;
    let best: Sequence | undefined;
    let bestVerdict: Verdict = Verdict.none;
    if (had > 0) {
      const sp = st.spill[slot];
      const prog = sp ?? i32;
      const base = sp === undefined ? slot * RECORD_WORDS + I_PROGRESS : 0;
      const byId = this.table.byId;
      const missLimit = this.missLimit;
      let w = base;
      for (let i = base; i < base + 2 * had; i += 2) {
        const wanted = prog[i + 1]!;
        if ((wanted & WANTED_PORT_MASK) !== port) {
          if (wanted < missLimit) {
            prog[w] = prog[i]!;
            prog[w + 1] = wanted + MISS_UNIT;
            w += 2;
            tolerated++;
          }
          continue;
        }
        const seq = byId[prog[i]!];
        if (seq === undefined || seq.client.proto !== k.proto || !this.table.isLive(seq)) continue;
        continued++;
        const n = seq.ports.indexOf(port); // sequences never repeat a port
        if (n === seq.ports.length - 1) {
          const v = this.verdict(seq, slot, at);
          if (best === undefined || v < bestVerdict || (v === bestVerdict && before(seq, best))) {
            best = seq;
            bestVerdict = v;
          }
          continue;
        }
        prog[w] = seq.id;
        prog[w + 1] = seq.ports[n + 1]! + this.table.missesAt(seq.client, seq.step);
        w += 2;
      }
      i32[slot * RECORD_WORDS + I_ACTIVE] = (w - base) / 2;
    }

    if (best !== undefined) {
      const b = slot * RECORD_WORDS;
      i32[b + I_ACTIVE] = 0; // a completed sequence ends the source's attempt, whatever else it was part-way through
      i32[b + I_LAST_PORT] = port;
      st.f64[slot * RECORD_DOUBLES + F_LAST_AT_MS] = at;
      return this.complete(best, bestVerdict, slot, src, at);
    }

    // Start: sequences whose first port this is.
    const startTable = k.proto === "tcp" ? this.startsTcp : this.startsUdp;
    const counts = startTable.counts;
    const count = port < counts.length ? counts[port]! : 0;
    let started = 0;
    if (count > 0) {
      if (slot < 0) {
        slot = st.insert(keyKind, src);
        i32 = st.i32;
      }
      const b = slot * RECORD_WORDS;
      const active = i32[b + I_ACTIVE]!;
      const room = 2 * this.maxProgress;
      const want = Math.min(room, 2 * (active + count));
      let sp = st.spill[slot];
      if (sp === undefined && want > 2 * INLINE_PAIRS) sp = st.spillSlot(slot, 2 * active);
      const prog = sp ?? i32;
      const base = sp === undefined ? b + I_PROGRESS : 0;
      const from = count <= INLINE_STARTS ? startTable.heads : startTable.more[port]!;
      let r = count <= INLINE_STARTS ? port * START_WORDS : 0;
      const rEnd = r + 2 * count;
      let w = base + 2 * active;
      const end = base + room;
      for (; r < rEnd; r += 2) {
        if (w >= end) {
          this.progressOverflow += (rEnd - r) / 2;
          break;
        }
        prog[w] = from[r]!;
        prog[w + 1] = from[r + 1]!;
        w += 2;
      }
      started = (w - base) / 2 - active;
      i32[b + I_ACTIVE] = (w - base) / 2;
    }
    // A spilled source whose progress fits its record again gives the spill buffer back (bounded memory).
    if (slot >= 0 && st.spill[slot] !== undefined) {
      const active = i32[slot * RECORD_WORDS + I_ACTIVE]!;
      if (active <= INLINE_PAIRS) st.unspillSlot(slot, 2 * active);
    }

    // A knock that starts and continues nothing is a failed attempt, also from a source never seen before, so a
    // sweep of the range is reported as brute force. The source table is bounded, so a flood cannot grow it.
    if (slot < 0) {
      slot = st.insert(keyKind, src);
      i32 = st.i32;
    }
    const b = slot * RECORD_WORDS;
    i32[b + I_LAST_PORT] = port;
    st.f64[slot * RECORD_DOUBLES + F_LAST_AT_MS] = at;
    // Every wrong knock counts, also one that the source's sequences survive: a sweep is reported all the same.
    if (continued === 0 && (had > 0 || started === 0)) {
      this.fail(slot, at);
      if ((i32[b + I_FLAGS]! & FLAG_REPORT_PENDING) !== 0) return this.lesser(slot, src, undefined);
      if (had === 0) return this.ignored();
      if (tolerated === 0) {
        this.counts.reset++;
        return { kind: "reset", src };
      }
      if (started > 0) {
        this.counts.progress++;
        return { kind: "progress", src };
      }
      return this.ignored();
    }
    if ((i32[b + I_FLAGS]! & FLAG_REPORT_PENDING) !== 0) return this.lesser(slot, src, undefined);
    if (continued > 0 || started > 0) {
      this.counts.progress++;
      return { kind: "progress", src };
    }
    return this.ignored();
  }

  /** Moves windows; once enough sequence ids have died, neutralises them in progress so they can be reused. */
  private advance(nowMs: number): void {
    this.table.advance(nowMs);
    this.purgeIfDue();
  }

  private purgeIfDue(): void {
    if (!this.table.purgeDue) return;
    const byId = this.table.byId;
    this.sources.purgeProgress((id) => byId[id] === undefined);
    this.table.releaseDeadIds();
  }

  private verdict(seq: Sequence, slot: number, at: number): Verdict {
    const c = seq.client;
    if (c.lastAccepted !== undefined && seq.step <= c.lastAccepted) return Verdict.replay;
    if (c.burned.includes(seq.step)) return Verdict.replay;
    const off = seq.step - c.step;
    if (off > this.options.skewWindows || off < -this.options.skewWindows) return Verdict.skew;
    return at < this.sources.f64[slot * RECORD_DOUBLES + F_BANNED_UNTIL_MS]! ? Verdict.lockout : Verdict.open;
  }

  /** src: the knock's text, which is the source's (one key, one text: see SourceTable.keyOf). */
  private complete(seq: Sequence, v: Verdict, slot: number, src: string, at: number): Decision {
    const c = seq.client;
    const ports = [...seq.ports];
    if (v === Verdict.open) {
      c.lastAccepted = seq.step;
      this.counts.open++;
      return { kind: "open", client: c.name, step: seq.step, src, ports, open: c.open };
    }
    this.fail(slot, at);
    this.counts.refuse++;
    const base = { kind: "refuse", client: c.name, step: seq.step, src, ports } as const;
    if (v === Verdict.replay) return { ...base, reason: "replay" };
    if (v === Verdict.lockout) return { ...base, reason: "lockout" };
    const offsetWindows = seq.step - c.step;
    if (offsetWindows > 0) this.burn(c, seq.step);
    return { ...base, reason: "skew", offsetWindows };
  }

  /** Spends a future step seen in a skew refusal (bounded: only steps above the last accepted one matter). */
  private burn(c: TrackedClient, step: number): void {
    const keep = c.burned.filter((x) => (c.lastAccepted === undefined || x > c.lastAccepted) && x >= c.step - this.options.skewWindows);
    keep.push(step);
    c.burned = keep.slice(-64);
  }

  /** Counts a failed sequence in the source's one-minute bucket; crossing the threshold bans (if on) at once. */
  private fail(slot: number, at: number): void {
    const i32 = this.sources.i32;
    const f64 = this.sources.f64;
    const b = slot * RECORD_WORDS;
    const d = slot * RECORD_DOUBLES;
    if (!(at - f64[d + F_FAIL_WINDOW_START_MS]! < MINUTE_MS)) {
      f64[d + F_FAIL_WINDOW_START_MS] = at;
      i32[b + I_FAILURES] = 0;
    }
    const failures = ++i32[b + I_FAILURES]!;
    const bf = this.options.bruteForce;
    if (failures > bf.maxFailuresPerMinute && f64[d + F_REPORTED_WINDOW_START_MS] !== f64[d + F_FAIL_WINDOW_START_MS]) {
      f64[d + F_REPORTED_WINDOW_START_MS] = f64[d + F_FAIL_WINDOW_START_MS]!;
      i32[b + I_FLAGS]! |= FLAG_REPORT_PENDING;
      if (bf.ban) f64[d + F_BANNED_UNTIL_MS] = at + bf.banSeconds * 1000;
    }
  }

  /** Returns a pending brute-force report in place of a lesser decision. */
  private lesser(slot: number, src: string, d: Decision | undefined): Decision {
    const i32 = this.sources.i32;
    const b = slot * RECORD_WORDS;
    if ((i32[b + I_FLAGS]! & FLAG_REPORT_PENDING) !== 0) {
      i32[b + I_FLAGS]! &= ~FLAG_REPORT_PENDING;
      this.counts.bruteforce++;
      return { kind: "bruteforce", src, failures: i32[b + I_FAILURES]!, banned: this.options.bruteForce.ban };
    }
    if (d === undefined) return this.ignored();
    this.counts[d.kind]++;
    return d;
  }

  private ignored(): Decision {
    this.counts.ignored++;
    return { kind: "ignored" };
  }
}

/** A fixed order (client name, then step) so the choice never depends on table order. */
function before(a: Sequence, b: Sequence): boolean {
  if (a.client.name !== b.client.name) return a.client.name < b.client.name;
  return a.step < b.step;
}

function sameProfile(a: KnockProfile, b: KnockProfile): boolean {
  if (
    a.periodSeconds !== b.periodSeconds ||
    a.knocks !== b.knocks ||
    a.portMin !== b.portMin ||
    a.portMax !== b.portMax ||
    a.proto !== b.proto ||
    a.secret.length !== b.secret.length ||
    a.exclude.length !== b.exclude.length
  ) {
    return false;
  }
  for (let i = 0; i < a.secret.length; i++) if (a.secret[i] !== b.secret[i]) return false;
  for (let i = 0; i < a.exclude.length; i++) if (a.exclude[i] !== b.exclude[i]) return false;
  return true;
}

function checkOptions(o: MatcherOptions): void {
  const bad: string[] = [];
  const int = (v: number, name: string, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) bad.push(`${name} ${v} must be an integer >= ${min}`);
  };
  int(o.skewWindows, "skewWindows", 0);
  int(o.diagnosticWindows, "diagnosticWindows", 0);
  int(o.knockTimeoutMs, "knockTimeoutMs", 0);
  int(o.retransmitMs, "retransmitMs", 0);
  int(o.toleratedWrongKnocks, "toleratedWrongKnocks", 0);
  if (o.toleratedWrongKnocks > MAX_TOLERATED_WRONG_KNOCKS) bad.push(`toleratedWrongKnocks ${o.toleratedWrongKnocks} must be at most ${MAX_TOLERATED_WRONG_KNOCKS}`);
  int(o.maxSources, "maxSources", 1);
  int(o.bruteForce.maxFailuresPerMinute, "bruteForce.maxFailuresPerMinute", 0);
  int(o.bruteForce.banSeconds, "bruteForce.banSeconds", 0);
  if (bad.length > 0) throw new TknockError("TKNOCK_INVALID_MATCHER_OPTIONS", `matcher options: ${bad.join("; ")}`);
}
