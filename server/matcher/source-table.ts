import type { ObservedKnock } from "../../src/ports.js";
import { ADDRESS_WORDS } from "../packets/address.js";
import { sourceKey } from "../packets/captured-knock.js";
import type { StartTable } from "./start-table.js";

/**
 * What the matcher remembers about each source address, as fixed-size records in one ArrayBuffer rather than an
 * object per source: no per-source object header, no boxed doubles, no pointers for the GC to trace, and the
 * fields one packet reads sit in two adjacent cache lines. At 100k sources this is 12.8 MB of records plus the
 * key tables, against ~720 bytes per source with objects and arrays. The layout is this file's alone: the matcher
 * goes through the methods below.
 *
 * Record of slot n: Int32Array words [n * RECORD_WORDS, (n + 1) * RECORD_WORDS); its first 8 words are the four
 * Float64 fields (Float64Array index n * RECORD_DOUBLES + F_*).
 */

/** 32-bit words per record (128 bytes). */
const RECORD_WORDS = 32;
const RECORD_DOUBLES = RECORD_WORDS / 2;

// Float64 fields (index n * RECORD_DOUBLES + F_*).
/** Time of the last knock that was not a retransmission. */
const F_LAST_AT_MS = 0;
/** Start of the failure bucket I_FAILURES counts in. */
const F_FAIL_WINDOW_START_MS = 1;
/** Bucket already reported as brute force, so a source is reported once per bucket (NaN: none). */
const F_REPORTED_WINDOW_START_MS = 2;
const F_BANNED_UNTIL_MS = 3;

// Int32 fields (index n * RECORD_WORDS + I_*); words 0..7 hold the doubles.
/** Port of the last knock that was not a retransmission (-1: none). */
const I_LAST_PORT = 8;
/** Pairs of progress in use; entries past it are stale. */
const I_ACTIVE = 9;
/** Failed sequences in the bucket that starts at F_FAIL_WINDOW_START_MS. */
const I_FAILURES = 10;
const I_FLAGS = 11;
/** Words 12..15: the address key of a source keyed by address (address.ts). */
const I_KEY = 12;
/**
 * Sequences in progress, interleaved [id, wanted, id, wanted, ...]: the wanted word sits inline, so the common
 * case (a knock that continues nothing) reads the record and touches no sequence. Up to INLINE_PAIRS live in the
 * record; a source with more moves its progress to a spill buffer (`spill`) until it has fewer.
 * wanted = next port (low 16 bits) + wrong knocks the entry may still take (high bits, WRONG_KNOCK_UNIT each, up
 * to 32767), so the per-entry tolerance costs no extra word. PURGED_WANTED never matches and dies at the next wrong knock: it
 * marks an entry whose sequence id was purged (see purgeProgress).
 */
const I_PROGRESS = 16;
const PORT_MASK = 0xffff;
const WRONG_KNOCK_UNIT = 0x1_0000;
/** Port 0 (never watched: ranges start at 1), no wrong knock left. */
const PURGED_WANTED = 0;
const INLINE_PAIRS = (RECORD_WORDS - I_PROGRESS) / 2;

/** Seen again since the eviction hand last passed (CLOCK's reference bit). */
const FLAG_RECENT = 1;
/** A brute-force report waiting for a knock whose decision it may replace (see Matcher.onKnock). */
const FLAG_REPORT_PENDING = 2;
/** The key kind (the address family, or KEY_TEXT) sits in these flag bits. */
const KEY_SHIFT = 2;
const KEY_BITS = 7 << KEY_SHIFT;

/** A source keyed by its text in a Map (text that is no canonical address); else the key is its family, 4 or 6. */
const KEY_TEXT = 0;

const INITIAL_SLOTS = 1024;

/**
 * The wanted word of a progress entry waiting for `nextPort` that may still take `wrongKnocksAllowed` wrong
 * knocks: what StartTable stores beside a sequence id, so a start is a plain copy into the record.
 */
export function progressWanted(nextPort: number, wrongKnocksAllowed: number): number {
  return nextPort + wrongKnocksAllowed * WRONG_KNOCK_UNIT;
}

/**
 * Source address -> slot, at most `capacity` slots. Eviction is CLOCK (second chance), the usual O(1)
 * approximation of least-recently-seen: a knock from a known source sets its FLAG_RECENT bit; when the table is
 * full the hand sweeps the slots, clearing bits, and evicts the first source not seen again since the hand last
 * passed. A touch writes one word of a record already in cache, and a flood of one-packet spoofed sources is
 * evicted before any source that knocked twice. Slots are reused, so a flood allocates nothing here.
 *
 * Addresses are keyed by their address key (captured-knock.ts sourceKey) in an open-addressing table: no string
 * hashing per packet, and no string kept per source (a million sources passing through would leave a million
 * promoted strings for the old generation to collect). Text that is no canonical address keeps its own Map
 * entry, so every distinct text is still a distinct source.
 */
export class SourceTable {
  private i32: Int32Array;
  private f64: Float64Array;
  /** Progress of slots with more than INLINE_PAIRS in progress (2 * maxProgress words each). */
  private readonly spill: (Int32Array | undefined)[] = [];
  /** The key and kind find() computed, for insert(). */
  private readonly key = new Int32Array(ADDRESS_WORDS);
  private keyKind = KEY_TEXT;
  /** Sequence ids knockProgress took out (matchedCount of them). */
  private readonly matched: Int32Array;
  /** The text of text-keyed slots ("" for the others), to remove them from byText on eviction. */
  private readonly texts: string[] = [];
  private readonly byText = new Map<string, number>();
  // Address keys: linear probing, load <= 1/2. keySlots holds slot + 1 (0: empty).
  private keyWords: Int32Array;
  private keyKinds: Uint8Array;
  private keySlots: Int32Array;
  private keyCount = 0;
  /** Random per table, so spoofed sources cannot be chosen to collide (a long probe chain per packet). */
  private readonly seed = (Math.random() * 0x1_0000_0000) | 0;
  private readonly spillPool: Int32Array[] = [];
  private used = 0;
  private hand = 0;
  evictions = 0;

  constructor(
    readonly capacity: number,
    /** Progress pairs one source may hold (the size of a spill buffer). */
    readonly maxProgress: number,
  ) {
    const slots = Math.min(capacity, INITIAL_SLOTS);
    const buf = new ArrayBuffer(slots * RECORD_WORDS * 4);
    this.i32 = new Int32Array(buf);
    this.f64 = new Float64Array(buf);
    this.matched = new Int32Array(maxProgress);
    this.keyWords = new Int32Array(4 * 2 * INITIAL_SLOTS);
    this.keyKinds = new Uint8Array(2 * INITIAL_SLOTS);
    this.keySlots = new Int32Array(2 * INITIAL_SLOTS);
  }

  get size(): number {
    return this.byText.size + this.keyCount;
  }

  /** The slot of the knock's source, or -1. Keeps the source's key for an insert() that follows. */
  find(k: ObservedKnock): number {
    const key = this.key;
    const kind = sourceKey(k, key);
    this.keyKind = kind;
    if (kind === KEY_TEXT) return this.byText.get(k.src) ?? -1;
    const k0 = key[0]!;
    const k1 = key[1]!;
    const k2 = key[2]!;
    const k3 = key[3]!;
    const words = this.keyWords;
    const kinds = this.keyKinds;
    const mask = kinds.length - 1;
    for (let i = this.hash(kind, k0, k1, k2, k3) & mask; ; i = (i + 1) & mask) {
      const kd = kinds[i]!;
      if (kd === 0) return -1;
      const w = 4 * i;
      if (kd === kind && words[w] === k0 && words[w + 1] === k1 && words[w + 2] === k2 && words[w + 3] === k3) return this.keySlots[i]! - 1;
    }
  }

  /**
   * Creates (or recycles an evicted) record for the source of `k`, which find(k) has just not found; a first
   * packet sets no FLAG_RECENT.
   */
  insert(k: ObservedKnock): number {
    let slot: number;
    if (this.used < this.capacity) {
      slot = this.used++;
      if (slot * RECORD_WORDS >= this.i32.length) this.growRecords();
    } else {
      const i32 = this.i32;
      const n = this.used;
      let hand = this.hand;
      while ((i32[hand * RECORD_WORDS + I_FLAGS]! & FLAG_RECENT) !== 0) {
        i32[hand * RECORD_WORDS + I_FLAGS]! &= ~FLAG_RECENT;
        hand = hand + 1 === n ? 0 : hand + 1;
      }
      slot = hand;
      this.hand = hand + 1 === n ? 0 : hand + 1;
      const b = slot * RECORD_WORDS;
      const oldKind = (i32[b + I_FLAGS]! & KEY_BITS) >> KEY_SHIFT;
      if (oldKind === KEY_TEXT) this.byText.delete(this.texts[slot]!);
      else this.deleteKey(oldKind, i32[b + I_KEY]!, i32[b + I_KEY + 1]!, i32[b + I_KEY + 2]!, i32[b + I_KEY + 3]!);
      this.releaseSpill(slot);
      this.evictions++;
    }
    const b = slot * RECORD_WORDS;
    const d = slot * RECORD_DOUBLES;
    const i32 = this.i32;
    const f64 = this.f64;
    f64[d + F_LAST_AT_MS] = Number.NEGATIVE_INFINITY;
    f64[d + F_FAIL_WINDOW_START_MS] = Number.NEGATIVE_INFINITY;
    f64[d + F_REPORTED_WINDOW_START_MS] = Number.NaN;
    f64[d + F_BANNED_UNTIL_MS] = Number.NEGATIVE_INFINITY;
    i32[b + I_LAST_PORT] = -1;
    i32[b + I_ACTIVE] = 0;
    i32[b + I_FAILURES] = 0;
    const kind = this.keyKind;
    i32[b + I_FLAGS] = kind << KEY_SHIFT;
    if (kind === KEY_TEXT) {
      this.texts[slot] = k.src;
      this.byText.set(k.src, slot);
    } else {
      this.texts[slot] = "";
      const key = this.key;
      for (let i = 0; i < 4; i++) i32[b + I_KEY + i] = key[i]!;
      this.insertKey(kind, key[0]!, key[1]!, key[2]!, key[3]!, slot);
    }
    return slot;
  }

  /** The source knocked again: it survives the eviction hand's next pass. */
  touch(slot: number): void {
    this.i32[slot * RECORD_WORDS + I_FLAGS]! |= FLAG_RECENT;
  }

  /** The knock repeats the source's last port within retransmitMs (a TCP SYN retry, a duplicated datagram). */
  isRetransmit(slot: number, port: number, atMs: number, retransmitMs: number): boolean {
    return port === this.i32[slot * RECORD_WORDS + I_LAST_PORT] && atMs - this.f64[slot * RECORD_DOUBLES + F_LAST_AT_MS]! <= retransmitMs;
  }

  /** Milliseconds since the source's last knock that was not a retransmission (Infinity: none). */
  idleMs(slot: number, atMs: number): number {
    return atMs - this.f64[slot * RECORD_DOUBLES + F_LAST_AT_MS]!;
  }

  /** Sequences the source is part-way through. */
  progressCount(slot: number): number {
    return this.i32[slot * RECORD_WORDS + I_ACTIVE]!;
  }

  /** The source abandons every sequence in progress. */
  dropProgress(slot: number): void {
    this.i32[slot * RECORD_WORDS + I_ACTIVE] = 0;
  }

  /**
   * Applies a knock on `port` to the source's sequences in progress (docs/protocol.md 6, rule 2). An entry
   * waiting for another port takes it as a wrong knock: kept with one wrong knock less allowed if it had any
   * left, else dropped. An entry waiting for this port is taken out, its sequence id listed for matchedId(); the
   * caller puts back those that go on (addProgress). Returns how many were taken out; progressCount() is then
   * the number that survived the wrong knock.
   */
  knockProgress(slot: number, port: number): number {
    const i32 = this.i32;
    const a = slot * RECORD_WORDS + I_ACTIVE;
    const active = i32[a]!;
    const sp = this.spill[slot];
    const prog = sp ?? i32;
    const base = sp === undefined ? slot * RECORD_WORDS + I_PROGRESS : 0;
    const matched = this.matched;
    let m = 0;
    let w = base;
    for (let i = base; i < base + 2 * active; i += 2) {
      const wanted = prog[i + 1]!;
      if ((wanted & PORT_MASK) === port) {
        matched[m++] = prog[i]!;
      } else if (wanted >= WRONG_KNOCK_UNIT) {
        prog[w] = prog[i]!;
        prog[w + 1] = wanted - WRONG_KNOCK_UNIT;
        w += 2;
      }
    }
    i32[a] = (w - base) / 2;
    return m;
  }

  /** The sequence id of the i-th entry the last knockProgress() took out. */
  matchedId(i: number): number {
    return this.matched[i]!;
  }

  /** Puts an entry back (see knockProgress); the source holds fewer than maxProgress, so it always fits. */
  addProgress(slot: number, id: number, nextPort: number, wrongKnocksAllowed: number): void {
    const a = slot * RECORD_WORDS + I_ACTIVE;
    const active = this.i32[a]!;
    const sp = this.spill[slot];
    const prog = sp ?? this.i32;
    const at = (sp === undefined ? slot * RECORD_WORDS + I_PROGRESS : 0) + 2 * active;
    prog[at] = id;
    prog[at + 1] = progressWanted(nextPort, wrongKnocksAllowed);
    this.i32[a] = active + 1;
  }

  /**
   * Adds the sequences whose first port is `port` (a start table's pairs) to the source's progress, as many as
   * fit below maxProgress. Returns how many were added.
   */
  addStarts(slot: number, starts: StartTable, port: number, count: number): number {
    const a = slot * RECORD_WORDS + I_ACTIVE;
    const active = this.i32[a]!;
    const room = this.maxProgress - active;
    const n = Math.min(room, count);
    let sp = this.spill[slot];
    if (sp === undefined && active + n > INLINE_PAIRS) sp = this.spillSlot(slot, 2 * active);
    const base = sp === undefined ? slot * RECORD_WORDS + I_PROGRESS : 0;
    starts.copyPairs(port, sp ?? this.i32, base + 2 * active, n);
    this.i32[a] = active + n;
    return n;
  }

  /**
   * Records the knock as the source's last (for retransmissions and the knock timeout). A spilled source whose
   * progress fits its record again gives the spill buffer back (bounded memory).
   */
  endKnock(slot: number, port: number, atMs: number): void {
    const b = slot * RECORD_WORDS;
    this.i32[b + I_LAST_PORT] = port;
    this.f64[slot * RECORD_DOUBLES + F_LAST_AT_MS] = atMs;
    if (this.spill[slot] !== undefined) {
      const active = this.i32[b + I_ACTIVE]!;
      if (active <= INLINE_PAIRS) this.unspillSlot(slot, 2 * active);
    }
  }

  /** Counts a failed sequence in the source's bucket of `bucketMs` (a new bucket starts when it is over); returns the count. */
  countFailure(slot: number, atMs: number, bucketMs: number): number {
    const b = slot * RECORD_WORDS;
    const d = slot * RECORD_DOUBLES;
    if (!(atMs - this.f64[d + F_FAIL_WINDOW_START_MS]! < bucketMs)) {
      this.f64[d + F_FAIL_WINDOW_START_MS] = atMs;
      this.i32[b + I_FAILURES] = 0;
    }
    return ++this.i32[b + I_FAILURES]!;
  }

  /** Marks the current failure bucket for a brute-force report; false if it already was (one report a bucket). */
  markReport(slot: number): boolean {
    const d = slot * RECORD_DOUBLES;
    const bucket = this.f64[d + F_FAIL_WINDOW_START_MS]!;
    if (this.f64[d + F_REPORTED_WINDOW_START_MS] === bucket) return false;
    this.f64[d + F_REPORTED_WINDOW_START_MS] = bucket;
    this.i32[slot * RECORD_WORDS + I_FLAGS]! |= FLAG_REPORT_PENDING;
    return true;
  }

  hasPendingReport(slot: number): boolean {
    return (this.i32[slot * RECORD_WORDS + I_FLAGS]! & FLAG_REPORT_PENDING) !== 0;
  }

  /** Takes the pending brute-force report: the failure count to report. */
  takeReport(slot: number): number {
    const b = slot * RECORD_WORDS;
    this.i32[b + I_FLAGS]! &= ~FLAG_REPORT_PENDING;
    return this.i32[b + I_FAILURES]!;
  }

  ban(slot: number, untilMs: number): void {
    this.f64[slot * RECORD_DOUBLES + F_BANNED_UNTIL_MS] = untilMs;
  }

  isBanned(slot: number, atMs: number): boolean {
    return atMs < this.f64[slot * RECORD_DOUBLES + F_BANNED_UNTIL_MS]!;
  }

  /**
   * Turns every in-use progress entry whose sequence id is dead (isDead) into one that never matches, keeping
   * the count, so those ids can be reused without a stale entry ever reaching the new sequence.
   */
  purgeProgress(isDead: (id: number) => boolean): void {
    const i32 = this.i32;
    for (let slot = 0; slot < this.used; slot++) {
      const active = i32[slot * RECORD_WORDS + I_ACTIVE]!;
      if (active === 0) continue;
      const sp = this.spill[slot];
      const arr = sp ?? i32;
      const base = sp === undefined ? slot * RECORD_WORDS + I_PROGRESS : 0;
      for (let i = base; i < base + 2 * active; i += 2) if (isDead(arr[i]!)) arr[i + 1] = PURGED_WANTED;
    }
  }

  /** A spill buffer for the slot, holding a copy of its `words` inline progress words. */
  private spillSlot(slot: number, words: number): Int32Array {
    const buf = this.spillPool.pop() ?? new Int32Array(2 * this.maxProgress);
    const b = slot * RECORD_WORDS + I_PROGRESS;
    buf.set(this.i32.subarray(b, b + words));
    this.spill[slot] = buf;
    return buf;
  }

  /** Moves a spilled slot's progress back into its record (the caller checks it fits). */
  private unspillSlot(slot: number, words: number): void {
    const buf = this.spill[slot];
    if (buf === undefined) return;
    this.i32.set(buf.subarray(0, words), slot * RECORD_WORDS + I_PROGRESS);
    this.releaseSpill(slot);
  }

  private releaseSpill(slot: number): void {
    const buf = this.spill[slot];
    if (buf === undefined) return;
    this.spill[slot] = undefined;
    this.spillPool.push(buf);
  }

  private growRecords(): void {
    const slots = Math.min(this.capacity, 2 * (this.i32.length / RECORD_WORDS));
    const buf = new ArrayBuffer(slots * RECORD_WORDS * 4);
    const i32 = new Int32Array(buf);
    i32.set(this.i32);
    this.i32 = i32;
    this.f64 = new Float64Array(buf);
  }

  /** murmur3's 32-bit mixing over the seeded key words. */
  private hash(kind: number, k0: number, k1: number, k2: number, k3: number): number {
    let h = this.seed ^ kind;
    h = Math.imul(h ^ k0, 0xcc9e_2d51);
    h = Math.imul((h << 15) | (h >>> 17), 0x1b87_3593) ^ k1;
    h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe654_6b64;
    h = Math.imul(h ^ k2, 0xcc9e_2d51) ^ k3;
    h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
    return h ^ (h >>> 16);
  }

  private insertKey(kind: number, k0: number, k1: number, k2: number, k3: number, slot: number): void {
    if (2 * (this.keyCount + 1) > this.keyKinds.length) this.growKeys();
    const words = this.keyWords;
    const kinds = this.keyKinds;
    const mask = kinds.length - 1;
    let i = this.hash(kind, k0, k1, k2, k3) & mask;
    while (kinds[i] !== 0) i = (i + 1) & mask;
    kinds[i] = kind;
    words[4 * i] = k0;
    words[4 * i + 1] = k1;
    words[4 * i + 2] = k2;
    words[4 * i + 3] = k3;
    this.keySlots[i] = slot + 1;
    this.keyCount++;
  }

  /** Linear-probing delete by backward shift (no tombstones, so probe chains never silt up under a flood). */
  private deleteKey(kind: number, k0: number, k1: number, k2: number, k3: number): void {
    const words = this.keyWords;
    const kinds = this.keyKinds;
    const slots = this.keySlots;
    const mask = kinds.length - 1;
    let i = this.hash(kind, k0, k1, k2, k3) & mask;
    for (; ; i = (i + 1) & mask) {
      if (kinds[i] === 0) return;
      const w = 4 * i;
      if (kinds[i] === kind && words[w] === k0 && words[w + 1] === k1 && words[w + 2] === k2 && words[w + 3] === k3) break;
    }
    this.keyCount--;
    for (let j = (i + 1) & mask; kinds[j] !== 0; j = (j + 1) & mask) {
      const home = this.hash(kinds[j]!, words[4 * j]!, words[4 * j + 1]!, words[4 * j + 2]!, words[4 * j + 3]!) & mask;
      // Move j into the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        kinds[i] = kinds[j]!;
        words.copyWithin(4 * i, 4 * j, 4 * j + 4);
        slots[i] = slots[j]!;
        i = j;
      }
    }
    kinds[i] = 0;
  }

  private growKeys(): void {
    const oldWords = this.keyWords;
    const oldKinds = this.keyKinds;
    const oldSlots = this.keySlots;
    const n = 2 * oldKinds.length;
    this.keyWords = new Int32Array(4 * n);
    this.keyKinds = new Uint8Array(n);
    this.keySlots = new Int32Array(n);
    this.keyCount = 0;
    for (let i = 0; i < oldKinds.length; i++) {
      if (oldKinds[i] !== 0) this.insertKey(oldKinds[i]!, oldWords[4 * i]!, oldWords[4 * i + 1]!, oldWords[4 * i + 2]!, oldWords[4 * i + 3]!, oldSlots[i]! - 1);
    }
  }
}
