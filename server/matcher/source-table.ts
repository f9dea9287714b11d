import type { Sequence } from "./sequence-table.js";

/** What the matcher remembers about one source address. */
export type SourceState = {
  src: string;
  /** Seen again since the eviction hand last passed (CLOCK's reference bit). */
  recent: boolean;
  /** Port and time of the last knock that was not a retransmission. */
  lastPort: number;
  lastAtMs: number;
  /**
   * Sequences in progress, interleaved [seq, wantedPort, seq, wantedPort, ...]: the wanted port sits inline, so
   * the common case (a knock that continues nothing) reads one array and touches no sequence. `active` counts
   * pairs; entries past it are stale.
   */
  active: number;
  readonly progress: (Sequence | number)[];
  /** Failed sequences in the one-minute bucket that starts at failWindowStartMs. */
  failures: number;
  failWindowStartMs: number;
  /** Bucket already reported as brute force, so a source is reported once per minute. */
  reportedWindowStartMs: number;
  /** A brute-force report waiting for a knock whose decision it may replace (see Matcher.onKnock). */
  reportPending: boolean;
  bannedUntilMs: number;
};

/**
 * Source address -> state, at most `capacity` entries. Eviction is CLOCK (second chance), the usual O(1)
 * approximation of least-recently-seen: a knock from a known source sets its `recent` bit; when the table is full
 * the hand sweeps the slots, clearing bits, and evicts the first source not seen again since the hand last
 * passed. Compared with a linked-list LRU, a touch writes one field of an object already in cache (no neighbour
 * updates: about 25% of the packet cost at 100k sources), and a flood of one-packet spoofed sources is evicted
 * before any source that knocked twice. The evicted state object is reused, so a flood allocates nothing.
 */
export class SourceTable {
  private readonly map = new Map<string, SourceState>();
  private readonly slots: SourceState[] = [];
  private hand = 0;
  evictions = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  get(src: string): SourceState | undefined {
    return this.map.get(src);
  }

  /** Creates (or recycles an evicted) state for a source not in the table; a first packet sets no `recent` bit. */
  insert(src: string): SourceState {
    let s: SourceState;
    if (this.slots.length < this.capacity) {
      s = {
        src,
        recent: false,
        lastPort: -1,
        lastAtMs: Number.NEGATIVE_INFINITY,
        active: 0,
        progress: [],
        failures: 0,
        failWindowStartMs: Number.NEGATIVE_INFINITY,
        reportedWindowStartMs: Number.NaN,
        reportPending: false,
        bannedUntilMs: Number.NEGATIVE_INFINITY,
      };
      this.slots.push(s);
    } else {
      const slots = this.slots;
      let hand = this.hand;
      for (let v = slots[hand]!; v.recent; v = slots[hand]!) {
        v.recent = false;
        hand = hand + 1 === slots.length ? 0 : hand + 1;
      }
      s = slots[hand]!;
      this.hand = hand + 1 === slots.length ? 0 : hand + 1;
      this.map.delete(s.src);
      this.evictions++;
      s.src = src;
      s.recent = false;
      s.lastPort = -1;
      s.lastAtMs = Number.NEGATIVE_INFINITY;
      s.active = 0;
      s.failures = 0;
      s.failWindowStartMs = Number.NEGATIVE_INFINITY;
      s.reportedWindowStartMs = Number.NaN;
      s.reportPending = false;
      s.bannedUntilMs = Number.NEGATIVE_INFINITY;
    }
    this.map.set(src, s);
    return s;
  }
}
