import type { KnockProto } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import type { KnockProfile } from "../../src/protocol/profile.js";
import { stepAt, stepStartMs } from "../../src/protocol/window.js";
import { wrongKnocksAllowed } from "./acceptance.js";
import { progressWanted } from "./source-table.js";
import { StartTable } from "./start-table.js";

/** One enrolled client as the matcher tracks it. */
export type TrackedClient = {
  readonly name: string;
  readonly profile: KnockProfile;
  readonly proto: KnockProto;
  open: readonly number[];
  lastAccepted: number | undefined;
  /**
   * Future steps already seen in a skew refusal. They are spent: an eavesdropper who saw a clock-ahead client's
   * knock must not be able to replay it once that step becomes current. Small and bounded; the daemon persists
   * it in the state file and passes it back at start (MatcherClient.spentSteps).
   */
  burned: number[];
  /** The client's own current step T (its period may differ from other clients'); -1 before the first build. */
  step: number;
  /** First instant of step + 1: when this client's window must move. */
  nextBoundaryMs: number;
  /** Set on revoke or profile change: progress through its sequences dies on the next knock. */
  removed: boolean;
  /** Sequences of steps T-D..T+D, slot = step modulo ring length, so a window move touches two slots. */
  readonly ring: (Sequence | undefined)[];
};

/** The ports of one client's step. Immutable: the same (secret, step) always derives the same ports. */
export type Sequence = {
  /** Index in SequenceTable.byId: progress stores this integer, not the object (no pointers in typed arrays). */
  readonly id: number;
  readonly client: TrackedClient;
  readonly step: number;
  readonly ports: readonly number[];
};

const PORT_SLOTS = 65_536;

/** Dead ids waiting for a progress purge before reuse; below this many, growing byId is cheaper than purging. */
const MIN_PURGE_IDS = 1024;

/**
 * Port -> sequences whose FIRST port it is (one table per protocol), for steps T-D..T+D of every client (D = the diagnostic span).
 * Only first ports are indexed: a source's progress is checked against its own sequences (ports[next] === port),
 * so a packet costs one array lookup plus the few sequences it starts or continues.
 * Window moves are incremental (derive the one new step, drop the old one) unless `incremental` is false, which
 * re-derives the client's whole window (kept for tests that check the two agree).
 */
export class SequenceTable {
  /** 1 where some client's range covers the port and that client does not exclude it. */
  readonly watched = new Uint8Array(PORT_SLOTS);
  /** First port -> [id, wanted] pairs (the start of a source's progress entry), one table per protocol. */
  readonly startsTcp = new StartTable();
  readonly startsUdp = new StartTable();
  private readonly clients = new Set<TrackedClient>();
  /**
   * Sequence id -> sequence; undefined once dropped. A dropped id is reused only after the matcher has purged it
   * from every source's progress (purgeDue, then releaseDeadIds), so a stale progress entry can never reach
   * another sequence.
   */
  readonly byId: (Sequence | undefined)[] = [];
  private freeIds: number[] = [];
  private deadIds: number[] = [];
  /** Earliest nextBoundaryMs over all clients: onKnock compares one number per packet. */
  nextBoundaryMs = Number.POSITIVE_INFINITY;
  size = 0;
  derivations = 0;
  derivationErrors = 0;

  constructor(
    /** D: steps T-D..T+D are kept. */
    readonly spanWindows: number,
    private readonly incremental: boolean,
    /** s: steps T-s..T+s are candidates (they can open). */
    private readonly skewWindows: number,
    /** W: wrong knocks a candidate's sequence survives between two of its ports. */
    private readonly toleratedWrongKnocks: number,
  ) {}

  /** The wanted word of a sequence's progress entry once its first port is knocked. */
  private firstWanted(c: TrackedClient, step: number, ports: readonly number[]): number {
    return progressWanted(ports[1]!, this.wrongKnocksAllowed(c, step));
  }

  /** Wrong knocks a progress entry of this step of the client may take (acceptance rule 2). */
  wrongKnocksAllowed(c: TrackedClient, step: number): number {
    return wrongKnocksAllowed(step, c.step, this.skewWindows, this.toleratedWrongKnocks);
  }

  get ringLength(): number {
    return 2 * this.spanWindows + 1;
  }

  /** True when enough ids are dead that the matcher should purge them from progress, then call releaseDeadIds. */
  get purgeDue(): boolean {
    return this.deadIds.length >= MIN_PURGE_IDS && this.deadIds.length >= this.size;
  }

  /** Call after every progress entry whose id is dead (byId undefined) has been neutralised: the ids become reusable. */
  releaseDeadIds(): void {
    for (const id of this.deadIds) this.freeIds.push(id);
    this.deadIds = [];
  }

  /** True while the sequence's client is enrolled and its step is still inside T-D..T+D. */
  isLive(seq: Sequence): boolean {
    const c = seq.client;
    if (c.removed) return false;
    const off = seq.step - c.step;
    return off <= this.spanWindows && off >= -this.spanWindows;
  }

  newClient(name: string, profile: KnockProfile, open: readonly number[], lastAccepted: number | undefined): TrackedClient {
    return {
      name,
      profile,
      proto: profile.proto,
      open,
      lastAccepted,
      burned: [],
      step: -1,
      nextBoundaryMs: Number.NEGATIVE_INFINITY,
      removed: false,
      ring: new Array<Sequence | undefined>(this.ringLength).fill(undefined),
    };
  }

  addClient(c: TrackedClient, nowMs: number): void {
    this.clients.add(c);
    this.moveClient(c, stepAt(nowMs, c.profile.periodSeconds), true);
  }

  removeClient(c: TrackedClient): void {
    c.removed = true;
    if (!this.clients.delete(c)) return;
    for (let i = 0; i < c.ring.length; i++) this.dropSlot(c, i);
  }

  /** Moves every client whose boundary has passed; called lazily from onKnock and from the daemon's timer. */
  advance(nowMs: number): void {
    if (!(nowMs >= this.nextBoundaryMs)) return;
    for (const c of this.clients) {
      if (nowMs >= c.nextBoundaryMs) this.moveClient(c, stepAt(nowMs, c.profile.periodSeconds), !this.incremental);
    }
    this.recomputeNextBoundary();
  }

  recomputeNextBoundary(): void {
    let next = Number.POSITIVE_INFINITY;
    for (const c of this.clients) if (c.nextBoundaryMs < next) next = c.nextBoundaryMs;
    this.nextBoundaryMs = next;
  }

  /** Rebuilds the watched-port map from the clients' ranges minus each client's own exclusions. */
  recomputeWatched(): void {
    const cover = new Int32Array(PORT_SLOTS + 1);
    for (const c of this.clients) {
      const { portMin, portMax } = c.profile;
      cover[portMin]! += 1;
      cover[portMax + 1]! -= 1;
    }
    let running = 0;
    for (let p = 0; p < PORT_SLOTS; p++) {
      running += cover[p]!;
      cover[p] = running;
    }
    // An excluded port is never part of that client's sequences; it is often a service's port, so its traffic
    // should not reset knocks unless another client's range needs it.
    for (const c of this.clients) {
      for (const x of new Set(c.profile.exclude)) if (x >= c.profile.portMin && x <= c.profile.portMax) cover[x]! -= 1;
    }
    for (let p = 0; p < PORT_SLOTS; p++) this.watched[p] = cover[p]! > 0 ? 1 : 0;
  }

  /** Every live sequence as "client step ports", sorted: lets tests compare two tables. */
  snapshot(): string[] {
    const out: string[] = [];
    for (const table of [this.startsTcp, this.startsUdp]) {
      for (let port = 0; port < PORT_SLOTS; port++) {
        const n = table.count(port);
        const [arr, base] = table.pairsOf(port);
        for (let i = base; i < base + 2 * n; i += 2) {
          const s = this.byId[arr[i]!]!;
          out.push(`${s.client.name} ${s.step} ${s.ports.join(",")}`);
        }
      }
    }
    return out.sort();
  }

  private moveClient(c: TrackedClient, newStep: number, full: boolean): void {
    const d = this.spanWindows;
    const len = c.ring.length;
    if (full || c.step < 0 || newStep - c.step >= len) {
      // A rebuilt step keeps its id: progress through the old copy must continue exactly as through the new one
      // (same client, step and ports), as it did when progress held the sequence object itself.
      const kept = new Map<number, number>();
      for (let i = 0; i < len; i++) {
        const old = c.ring[i];
        if (old !== undefined && old.step >= newStep - d && old.step <= newStep + d) kept.set(old.step, old.id);
        this.dropSlot(c, i, old !== undefined && kept.has(old.step));
      }
      c.step = newStep;
      for (let x = newStep - d; x <= newStep + d; x++) {
        const id = kept.get(x);
        kept.delete(x);
        this.addStep(c, x, id);
      }
      for (const id of kept.values()) this.killId(id);
    } else if (newStep > c.step) {
      // Drop first: the leaving step and the arriving one share a ring slot.
      for (let x = c.step - d; x < newStep - d; x++) this.dropSlot(c, slotOf(x, len));
      const old = c.step;
      const firstNew = c.step + d + 1;
      c.step = newStep;
      for (let x = firstNew; x <= newStep + d; x++) this.addStep(c, x, undefined);
      // Steps that became candidates, or stopped being ones, start progress with another wrong-knock allowance now.
      for (let x = Math.max(old - this.skewWindows, newStep - d); x < firstNew && x <= newStep + this.skewWindows; x++) {
        const seq = c.ring[slotOf(x, len)];
        if (seq !== undefined && seq.step === x)
          (c.proto === "tcp" ? this.startsTcp : this.startsUdp).setSecond(seq.ports[0]!, seq.id, this.firstWanted(c, x, seq.ports));
      }
    }
    // A clock that steps back never moves a window back: steps already passed stay passed.
    c.nextBoundaryMs = stepStartMs(c.step + 1, c.profile.periodSeconds);
  }

  private addStep(c: TrackedClient, step: number, keptId: number | undefined): void {
    if (step < 0) {
      this.killId(keptId);
      return;
    }
    let ports: number[];
    try {
      ports = deriveSequence(c.profile, step);
    } catch {
      // Only for profiles validateProfile rejects, or with vanishing probability; never crash the packet path.
      this.derivationErrors++;
      this.killId(keptId);
      return;
    }
    this.derivations++;
    const id = keptId ?? this.freeIds.pop() ?? this.byId.length;
    const seq: Sequence = { id, client: c, step, ports };
    this.byId[id] = seq;
    c.ring[slotOf(step, c.ring.length)] = seq;
    (c.proto === "tcp" ? this.startsTcp : this.startsUdp).add(ports[0]!, id, this.firstWanted(c, step, ports));
    this.size++;
  }

  private killId(id: number | undefined): void {
    if (id === undefined) return;
    this.byId[id] = undefined;
    this.deadIds.push(id);
  }

  /** keepId: the same step is re-added at once under the same id (full rebuild). */
  private dropSlot(c: TrackedClient, slot: number, keepId = false): void {
    const seq = c.ring[slot];
    if (seq === undefined) return;
    c.ring[slot] = undefined;
    if (!keepId) {
      this.byId[seq.id] = undefined;
      this.deadIds.push(seq.id);
    }
    if ((c.proto === "tcp" ? this.startsTcp : this.startsUdp).remove(seq.ports[0]!, seq.id)) this.size--;
  }
}

function slotOf(step: number, len: number): number {
  return ((step % len) + len) % len;
}
