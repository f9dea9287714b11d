/**
 * The SPA replay cache: each nonce accepted, until the packet that carried it could no longer be accepted anyway
 * (the end of its window's candidacy, docs/protocol.md "SPA v1" acceptance rule 5). Bounded: only authenticated
 * packets enter, so an attacker cannot fill it; a client that does is refused (fail closed), never evicted.
 */
export class NonceCache {
  private readonly entries: Map<string, number>;

  constructor(
    readonly maxEntries: number,
    initial: ReadonlyMap<string, number> = new Map(),
  ) {
    this.entries = new Map(initial);
  }

  /** Whether the nonce was accepted and still matters at nowMs. */
  has(nonce: string, nowMs: number): boolean {
    const until = this.entries.get(nonce);
    return until !== undefined && until > nowMs;
  }

  /** Drops the entries that no longer matter; true when something was dropped. */
  prune(nowMs: number): boolean {
    let dropped = false;
    for (const [n, until] of this.entries) {
      if (until <= nowMs) {
        this.entries.delete(n);
        dropped = true;
      }
    }
    return dropped;
  }

  /** Adds a nonce; false when the cache is full even after pruning (the caller refuses the packet). */
  add(nonce: string, untilMs: number, nowMs: number): boolean {
    if (this.entries.size >= this.maxEntries) this.prune(nowMs);
    if (this.entries.size >= this.maxEntries) return false;
    this.entries.set(nonce, untilMs);
    return true;
  }

  get size(): number {
    return this.entries.size;
  }

  snapshot(): ReadonlyMap<string, number> {
    return new Map(this.entries);
  }
}
