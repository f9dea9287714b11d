const PORT_SLOTS = 65_536;

/** Words per port in StartTable.heads: up to INLINE_STARTS pairs (64 bytes, one cache line). */
const START_WORDS = 16;
const INLINE_STARTS = 8;

/**
 * Port -> sequences whose first port it is, as pairs [id, wanted, id, wanted, ...] (wanted: the progress word of
 * the sequence's second port, source-table.ts progressWanted) in one flat Int32Array with a fixed region per
 * port: a packet reads one cache line to learn what it starts (a JS array per port costs a header and a backing
 * store, two dependent loads). The counts sit apart (256 KB, stays in cache), so a port that starts nothing costs
 * no miss. A port that starts more than INLINE_STARTS sequences keeps its pairs in `more[port]`. Pairs are
 * appended at the end and removed by moving the last pair into the hole, so the order (which starts are dropped
 * when a source's progress is full) is a pure function of the adds and removes.
 */
export class StartTable {
  /** Empty until the first add (a protocol no client uses costs nothing). */
  private heads = new Int32Array(0);
  private counts = new Int32Array(0);
  private more: (Int32Array | undefined)[] = [];

  count(port: number): number {
    return port < this.counts.length ? this.counts[port]! : 0;
  }

  /** The pairs of a port: [array, offset of the first id]. */
  pairsOf(port: number): [Int32Array, number] {
    const n = this.count(port);
    return n <= INLINE_STARTS ? [this.heads, port * START_WORDS] : [this.more[port]!, 0];
  }

  /** Copies the first n pairs of `port` (n <= count(port)) into dst at `at`. */
  copyPairs(port: number, dst: Int32Array, at: number, n: number): void {
    if (n === 0) return;
    const inline = this.counts[port]! <= INLINE_STARTS;
    const from = inline ? port * START_WORDS : 0;
    const src = inline ? this.heads : this.more[port]!;
    for (let i = 0; i < 2 * n; i++) dst[at + i] = src[from + i]!;
  }

  add(port: number, id: number, second: number): void {
    if (this.heads.length === 0) {
      this.heads = new Int32Array(PORT_SLOTS * START_WORDS);
      this.counts = new Int32Array(PORT_SLOTS);
      this.more = new Array<Int32Array | undefined>(PORT_SLOTS).fill(undefined);
    }
    const h = port * START_WORDS;
    const n = this.counts[port]!;
    let arr: Int32Array;
    let at: number;
    if (n < INLINE_STARTS) {
      arr = this.heads;
      at = h + 2 * n;
    } else {
      let more = this.more[port];
      if (more === undefined) {
        more = new Int32Array(4 * INLINE_STARTS);
        more.set(this.heads.subarray(h, h + 2 * n));
        this.more[port] = more;
      } else if (2 * (n + 1) > more.length) {
        const grown = new Int32Array(2 * more.length);
        grown.set(more);
        more = grown;
        this.more[port] = more;
      }
      arr = more;
      at = 2 * n;
    }
    arr[at] = id;
    arr[at + 1] = second;
    this.counts[port] = n + 1;
  }

  /** Replaces the second word of sequence `id`'s pair (its wanted word, see SequenceTable.firstWanted). */
  setSecond(port: number, id: number, second: number): void {
    const n = this.count(port);
    const [arr, base] = this.pairsOf(port);
    for (let i = base; i < base + 2 * n; i += 2) {
      if (arr[i] === id) {
        arr[i + 1] = second;
        return;
      }
    }
  }

  /** Removes the pair of sequence `id`; false if the port has none. */
  remove(port: number, id: number): boolean {
    const n = this.count(port);
    if (n === 0) return false;
    const [arr, base] = this.pairsOf(port);
    let i = base;
    const end = base + 2 * n;
    while (i < end && arr[i] !== id) i += 2;
    if (i >= end) return false;
    arr[i] = arr[end - 2]!;
    arr[i + 1] = arr[end - 1]!;
    this.counts[port] = n - 1;
    if (n - 1 === INLINE_STARTS) {
      this.heads.set(arr.subarray(0, 2 * INLINE_STARTS), port * START_WORDS);
      this.more[port] = undefined;
    }
    return true;
  }
}
