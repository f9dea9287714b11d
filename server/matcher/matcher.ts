/**
 * The knock matcher: pure (no I/O; time comes only from knock.atMs or an explicit nowMs). It follows each source
 * through the sequences its knocks start and continue, and turns each knock into one Decision; the daemon acts
 * on it (persist the accepted step, then open; record refusals). What a step means, and how many wrong knocks a
 * sequence survives, is the acceptance rule of docs/protocol.md section 6, in acceptance.ts.
 *
 * - Per client, steps T-D..T+D (D = max(diagnosticWindows, skewWindows), T = the client's own step) are derived
 *   ahead of time and indexed by first port (SequenceTable); window moves derive one new step per client.
 * - Per source (SourceTable), the sequences in progress, each with the wrong knocks it may still take. A knock
 *   that is the first port of a sequence starts it, whatever it does to the others.
 * - A repeat of the source's previous port within retransmitMs is a retransmission (TCP SYN retry, duplicated
 *   UDP datagram) and is ignored. A gap over knockTimeoutMs abandons progress (not counted as a failure).
 * - Every knock into a watched range that continues nothing and is not a first start is a failed attempt, as is
 *   every refusal; more than maxFailuresPerMinute from one source is reported as brute force (and banned if on).
 */
import { TknockError } from "../../src/errors.js";
import type { ObservedKnock } from "../../src/ports.js";
import { validateProfile, type KnockProfile } from "../../src/protocol/profile.js";
import { spendsStep, VERDICT_PREFERENCE, verdictOf, type Verdict } from "./acceptance.js";
import type { Decision, DecisionKind } from "./decision.js";
import { checkOptions, pickOptions, type MatcherOptions, type MatcherTuning } from "./options.js";
import { SequenceTable, type Sequence, type TrackedClient } from "./sequence-table.js";
import { SourceTable } from "./source-table.js";
import type { StartTable } from "./start-table.js";

export type MatcherClient = {
  readonly name: string;
  readonly profile: KnockProfile;
  /** Ports to open on an accepted knock. */
  readonly open: readonly number[];
  readonly lastAcceptedStep: number | undefined;
  /** Future steps spent by earlier skew refusals (from the state file), refused as replays. */
  readonly spentSteps?: readonly number[];
};

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
const DEFAULT_MAX_PROGRESS = 64;

export class Matcher {
  private readonly options: MatcherOptions;
  private readonly table: SequenceTable;
  private readonly sources: SourceTable;
  // Hot-path copies of options (one field load instead of two per packet).
  private readonly retransmitMs: number;
  private readonly knockTimeoutMs: number;
  private readonly watched: Uint8Array;
  private readonly startsTcp: StartTable;
  private readonly startsUdp: StartTable;
  private clients = new Map<string, TrackedClient>();
  /** The best sequence the current knock completed (see continueSequences), and what it means. */
  private completed: Sequence | undefined = undefined;
  private completedVerdict: Verdict = "replay";
  private retransmits = 0;
  private progressOverflow = 0;
  private readonly counts: Record<DecisionKind, number> = { ignored: 0, progress: 0, reset: 0, open: 0, refuse: 0, bruteforce: 0 };

  constructor(clients: readonly MatcherClient[], options: MatcherOptions, nowMs: number, tuning: MatcherTuning = {}) {
    checkOptions(options);
    this.options = pickOptions(options);
    this.table = new SequenceTable(
      Math.max(options.diagnosticWindows, options.skewWindows),
      tuning.incrementalTables ?? true,
      options.skewWindows,
      options.toleratedWrongKnocks,
    );
    this.sources = new SourceTable(options.maxSources, tuning.maxProgressPerSource ?? DEFAULT_MAX_PROGRESS);
    this.retransmitMs = options.retransmitMs;
    this.knockTimeoutMs = options.knockTimeoutMs;
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
    const sources = this.sources;
    let slot = sources.find(k);
    let had = 0;
    if (slot >= 0) {
      sources.touch(slot);
      if (sources.isRetransmit(slot, port, at, this.retransmitMs)) {
        this.retransmits++;
        return sources.hasPendingReport(slot) ? this.report(slot, k.src) : this.ignored();
      }
      if (sources.idleMs(slot, at) > this.knockTimeoutMs) sources.dropProgress(slot);
      had = sources.progressCount(slot);
    }

    // Continue: sequences waiting for this port go on (or complete); the others take a wrong knock.
    let continued = 0;
    let tolerated = 0;
    if (had > 0) {
      const matched = sources.knockProgress(slot, port);
      tolerated = sources.progressCount(slot);
      if (matched > 0) continued = this.continueSequences(slot, k, matched);
      if (this.completed !== undefined) return this.complete(slot, k);
    }

    // Start: sequences whose first port this is.
    const starts = k.proto === "tcp" ? this.startsTcp : this.startsUdp;
    const count = starts.count(port);
    let started = 0;
    if (count > 0) {
      if (slot < 0) slot = sources.insert(k);
      started = sources.addStarts(slot, starts, port, count);
      this.progressOverflow += count - started;
    }
    // A knock that starts and continues nothing is a failed attempt, also from a source never seen before, so a
    // sweep of the range is reported as brute force. The source table is bounded, so a flood cannot grow it.
    if (slot < 0) slot = sources.insert(k);
    sources.endKnock(slot, port, at);
    return this.outcome(slot, k, had, continued, tolerated, started);
  }

  /**
   * Moves each sequence the knock continues on to its next port, or, on its last port, weighs the completion:
   * the best one (VERDICT_PREFERENCE, then client name and step) is left in `completed`. Returns how many continued.
   */
  private continueSequences(slot: number, k: ObservedKnock, matched: number): number {
    const sources = this.sources;
    const table = this.table;
    let continued = 0;
    for (let i = 0; i < matched; i++) {
      const seq = table.byId[sources.matchedId(i)];
      if (seq === undefined || seq.client.proto !== k.proto || !table.isLive(seq)) continue;
      continued++;
      const n = seq.ports.indexOf(k.dstPort); // sequences never repeat a port
      if (n === seq.ports.length - 1) this.weighCompletion(seq, slot, k.atMs);
      else sources.addProgress(slot, seq.id, seq.ports[n + 1]!, table.wrongKnocksAllowed(seq.client, seq.step));
    }
    return continued;
  }

  private weighCompletion(seq: Sequence, slot: number, at: number): void {
    const c = seq.client;
    const v = verdictOf(
      { step: seq.step, currentStep: c.step, lastAcceptedStep: c.lastAccepted, spentSteps: c.burned, bannedSource: this.sources.isBanned(slot, at) },
      this.options.skewWindows,
    );
    const best = this.completed;
    const rank = VERDICT_PREFERENCE.indexOf(v);
    const bestRank = VERDICT_PREFERENCE.indexOf(this.completedVerdict);
    if (best === undefined || rank < bestRank || (rank === bestRank && before(seq, best))) {
      this.completed = seq;
      this.completedVerdict = v;
    }
  }

  /** The decision of the sequence the knock completed: open (the step becomes the client's last accepted) or refuse. */
  private complete(slot: number, k: ObservedKnock): Decision {
    const seq = this.completed!;
    const v = this.completedVerdict;
    this.completed = undefined;
    // A completed sequence ends the source's attempt, whatever else it was part-way through.
    this.sources.dropProgress(slot);
    this.sources.endKnock(slot, k.dstPort, k.atMs);
    const c = seq.client;
    const src = k.src;
    const ports = [...seq.ports];
    if (v === "open") {
      c.lastAccepted = seq.step;
      this.counts.open++;
      return { kind: "open", client: c.name, step: seq.step, src, ports, open: c.open };
    }
    this.fail(slot, k.atMs);
    this.counts.refuse++;
    const base = { kind: "refuse", client: c.name, step: seq.step, src, ports } as const;
    if (v !== "skew") return { ...base, reason: v };
    if (spendsStep(seq.step, c.step)) this.burn(c, seq.step);
    return { ...base, reason: "skew", offsetWindows: seq.step - c.step };
  }

  /** The decision of a knock that completed nothing: bruteforce (a pending report) > reset > progress > ignored. */
  private outcome(slot: number, k: ObservedKnock, had: number, continued: number, tolerated: number, started: number): Decision {
    // Every wrong knock is a failure, also one that the source's sequences survive: a sweep is reported all the same.
    const wrong = continued === 0 && (had > 0 || started === 0);
    if (wrong) this.fail(slot, k.atMs);
    if (this.sources.hasPendingReport(slot)) return this.report(slot, k.src);
    if (!wrong) return this.progress(k.src);
    if (had === 0) return this.ignored(); // nothing was in progress: a stray knock
    if (tolerated === 0) return this.reset(k.src); // one wrong knock too many for every sequence in progress
    return started > 0 ? this.progress(k.src) : this.ignored();
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

  /** Spends a future step seen in a skew refusal (bounded: only steps above the last accepted one matter). */
  private burn(c: TrackedClient, step: number): void {
    const keep = c.burned.filter((x) => (c.lastAccepted === undefined || x > c.lastAccepted) && x >= c.step - this.options.skewWindows);
    keep.push(step);
    c.burned = keep.slice(-64);
  }

  /** Counts a failed sequence in the source's one-minute bucket; crossing the threshold bans (if on) at once. */
  private fail(slot: number, at: number): void {
    const failures = this.sources.countFailure(slot, at, MINUTE_MS);
    const bf = this.options.bruteForce;
    if (failures > bf.maxFailuresPerMinute && this.sources.markReport(slot) && bf.ban) this.sources.ban(slot, at + bf.banSeconds * 1000);
  }

  /** The source's pending brute-force report, in place of a lesser decision. */
  private report(slot: number, src: string): Decision {
    this.counts.bruteforce++;
    return { kind: "bruteforce", src, failures: this.sources.takeReport(slot), banned: this.options.bruteForce.ban };
  }

  private progress(src: string): Decision {
    this.counts.progress++;
    return { kind: "progress", src };
  }

  private reset(src: string): Decision {
    this.counts.reset++;
    return { kind: "reset", src };
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
