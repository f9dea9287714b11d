/**
 * What the matcher remembers about each source address, as fixed-size records in one ArrayBuffer rather than an
 * object per source: no per-source object header, no boxed doubles, no pointers for the GC to trace, and the
 * fields one packet reads sit in two adjacent cache lines. At 100k sources this is 12.8 MB of records plus the
 * key tables, against ~720 bytes per source with objects and arrays.
 *
 * Record of slot n: Int32Array words [n * RECORD_WORDS, (n + 1) * RECORD_WORDS); the first four words pairs are
 * the Float64 fields (Float64Array index n * RECORD_DOUBLES + F_*).
 */

/** 32-bit words per record (128 bytes). */
export const RECORD_WORDS = 32;
export const RECORD_DOUBLES = RECORD_WORDS / 2;

// Float64 fields (index n * RECORD_DOUBLES + F_*).
/** Time of the last knock that was not a retransmission. */
export const F_LAST_AT_MS = 0;
/** Start of the one-minute bucket I_FAILURES counts in. */
export const F_FAIL_WINDOW_START_MS = 1;
/** Bucket already reported as brute force, so a source is reported once per minute (NaN: none). */
export const F_REPORTED_WINDOW_START_MS = 2;
export const F_BANNED_UNTIL_MS = 3;

// Int32 fields (index n * RECORD_WORDS + I_*); words 0..7 hold the doubles.
/** Port of the last knock that was not a retransmission (-1: none). */
export const I_LAST_PORT = 8;
/** Pairs of progress in use; entries past it are stale. */
export const I_ACTIVE = 9;
/** Failed sequences in the bucket that starts at F_FAIL_WINDOW_START_MS. */
export const I_FAILURES = 10;
export const I_FLAGS = 11;
/** The IPv4 key when FLAG_V4 is set (the address as a 32-bit integer). */
export const I_V4 = 12;
/**
 * Sequences in progress, interleaved [id, wantedPort, id, wantedPort, ...]: the wanted port sits inline, so the
 * common case (a knock that continues nothing) reads the record and touches no sequence. Up to INLINE_PAIRS live
 * in the record; a source with more moves its progress to a spill buffer (SourceTable.spill) until it has fewer.
 * A wanted port of -1 never matches: it marks an entry whose sequence id was purged (see purgeProgress).
 */
export const I_PROGRESS = 14;
export const INLINE_PAIRS = (RECORD_WORDS - I_PROGRESS) / 2;

/** Seen again since the eviction hand last passed (CLOCK's reference bit). */
export const FLAG_RECENT = 1;
/** A brute-force report waiting for a knock whose decision it may replace (see Matcher.onKnock). */
export const FLAG_REPORT_PENDING = 2;
/** Keyed in the IPv4 table (I_V4) rather than by its address text. */
export const FLAG_V4 = 4;

const INITIAL_SLOTS = 1024;

/**
 * Source address -> slot, at most `capacity` slots. Eviction is CLOCK (second chance), the usual O(1)
 * approximation of least-recently-seen: a knock from a known source sets its FLAG_RECENT bit; when the table is
 * full the hand sweeps the slots, clearing bits, and evicts the first source not seen again since the hand last
 * passed. A touch writes one word of a record already in cache, and a flood of one-packet spoofed sources is
 * evicted before any source that knocked twice. Slots are reused, so a flood allocates nothing here.
 *
 * IPv4 sources are keyed by their 32-bit address in an open-addressing table (no string hashing, no Map entry);
 * other sources by their text in a Map. Both keys of one address agree because an IPv4 source is always keyed
 * by number: the matcher converts canonical dotted-quad text (ipv4Key) when the listener gave no srcV4.
 */
export class SourceTable {
  i32: Int32Array;
  f64: Float64Array;
  /** Progress of slots with more than INLINE_PAIRS in progress (2 * maxProgress words each). */
  readonly spill: (Int32Array | undefined)[] = [];
  /** The address text of each slot, as decisions report it. */
  private readonly srcs: string[] = [];
  private readonly byText = new Map<string, number>();
  // IPv4 table: linear probing, load <= 1/2. v4Slots holds slot + 1 (0: empty).
  private v4Keys: Int32Array;
  private v4Slots: Int32Array;
  private v4Count = 0;
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
    this.v4Keys = new Int32Array(4 * INITIAL_SLOTS);
    this.v4Slots = new Int32Array(4 * INITIAL_SLOTS);
  }

  get size(): number {
    return this.byText.size + this.v4Count;
  }

  /** The slot of an IPv4 source (key: the address as an unsigned 32-bit integer), or -1. */
  findV4(key: number): number {
    const keys = this.v4Keys;
    const slots = this.v4Slots;
    const mask = keys.length - 1;
    const k = key | 0;
    for (let i = this.hashV4(k) & mask; ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === 0) return -1;
      if (keys[i] === k) return s - 1;
    }
  }

  findText(src: string): number {
    return this.byText.get(src) ?? -1;
  }

  src(slot: number): string {
    return this.srcs[slot]!;
  }

  /**
   * Creates (or recycles an evicted) record for a source not in the table; a first packet sets no FLAG_RECENT.
   * v4Key: the address as an unsigned 32-bit integer, or -1 for a source keyed by text. May replace i32/f64.
   */
  insert(src: string, v4Key: number): number {
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
      if ((i32[b + I_FLAGS]! & FLAG_V4) !== 0) this.deleteV4(i32[b + I_V4]!);
      else this.byText.delete(this.srcs[slot]!);
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
    this.srcs[slot] = src;
    if (v4Key >= 0) {
      i32[b + I_FLAGS] = FLAG_V4;
      i32[b + I_V4] = v4Key | 0;
      this.insertV4(v4Key | 0, slot);
    } else {
      i32[b + I_FLAGS] = 0;
      this.byText.set(src, slot);
    }
    return slot;
  }

  /** A spill buffer for the slot, holding a copy of its `words` inline progress words. */
  spillSlot(slot: number, words: number): Int32Array {
    const buf = this.spillPool.pop() ?? new Int32Array(2 * this.maxProgress);
    const b = slot * RECORD_WORDS + I_PROGRESS;
    buf.set(this.i32.subarray(b, b + words));
    this.spill[slot] = buf;
    return buf;
  }

  /** Moves a spilled slot's progress back into its record (the caller checks it fits). */
  unspillSlot(slot: number, words: number): void {
    const buf = this.spill[slot];
    if (buf === undefined) return;
    this.i32.set(buf.subarray(0, words), slot * RECORD_WORDS + I_PROGRESS);
    this.releaseSpill(slot);
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
      for (let i = base; i < base + 2 * active; i += 2) if (isDead(arr[i]!)) arr[i + 1] = -1;
    }
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

  /** murmur3's finaliser over the seeded key. */
  private hashV4(k: number): number {
    let h = k ^ this.seed;
    h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
    return h ^ (h >>> 16);
  }

  private insertV4(k: number, slot: number): void {
    if (2 * (this.v4Count + 1) > this.v4Keys.length) this.growV4();
    const keys = this.v4Keys;
    const slots = this.v4Slots;
    const mask = keys.length - 1;
    let i = this.hashV4(k) & mask;
    while (slots[i] !== 0) i = (i + 1) & mask;
    keys[i] = k;
    slots[i] = slot + 1;
    this.v4Count++;
  }

  /** Linear-probing delete by backward shift (no tombstones, so probe chains never silt up under a flood). */
  private deleteV4(k: number): void {
    const keys = this.v4Keys;
    const slots = this.v4Slots;
    const mask = keys.length - 1;
    let i = this.hashV4(k) & mask;
    for (; ; i = (i + 1) & mask) {
      if (slots[i] === 0) return;
      if (keys[i] === k) break;
    }
    this.v4Count--;
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const home = this.hashV4(keys[j]!) & mask;
      // Move j into the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        keys[i] = keys[j]!;
        slots[i] = slots[j]!;
        i = j;
      }
    }
    slots[i] = 0;
  }

  private growV4(): void {
    const oldKeys = this.v4Keys;
    const oldSlots = this.v4Slots;
    this.v4Keys = new Int32Array(2 * oldKeys.length);
    this.v4Slots = new Int32Array(2 * oldKeys.length);
    this.v4Count = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldSlots[i] !== 0) this.insertV4(oldKeys[i]!, oldSlots[i]! - 1);
  }
}

const DIGIT_0 = 48;
const DOT = 46;

/**
 * The address of canonical dotted-quad text ("198.18.0.1": four decimal octets, no leading zeros) as an unsigned
 * 32-bit integer, or -1 for anything else (IPv6, or text some other listener spelt differently, which stays a
 * source of its own exactly as before: only the canonical spelling is the same source as a parsed packet's).
 */
export function ipv4Key(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let key = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return -1;
      key = key * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      continue;
    }
    const v = c - DIGIT_0;
    if (v < 0 || v > 9 || (digits === 1 && octet === 0)) return -1;
    octet = octet * 10 + v;
    digits++;
    if (octet > 255) return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return key * 256 + octet;
}
