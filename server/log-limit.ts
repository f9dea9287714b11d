/**
 * Caps how many log lines of one kind a second may bring: a flood of spoofed sources can trigger a refusal or
 * brute-force warning per packet, and writing each one costs more than matching it. Suppressed lines are
 * counted, and the next line that passes carries the count, so nothing is silently lost.
 */
export class LogLimiter {
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private passed = 0;
  private suppressed = 0;

  constructor(private readonly perSecond: number) {}

  /** undefined: drop this line; otherwise pass it, with how many were dropped since the last that passed. */
  admit(nowMs: number): { suppressedBefore: number } | undefined {
    if (nowMs - this.windowStartMs >= 1000) {
      this.windowStartMs = nowMs;
      this.passed = 0;
    }
    if (this.passed >= this.perSecond) {
      this.suppressed++;
      return undefined;
    }
    this.passed++;
    const suppressedBefore = this.suppressed;
    this.suppressed = 0;
    return { suppressedBefore };
  }
}
