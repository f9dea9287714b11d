/**
 * Splits a byte stream into lines with bounded memory: a partial last line is kept until its newline arrives, but
 * a line longer than maxChars is dropped (counted once) and skipped up to its newline, so a runaway writer cannot
 * grow the buffer.
 */
export class LineSplitter {
  private partial = "";
  private skipping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: () => void,
    private readonly maxChars: number,
  ) {}

  push(chunk: string): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf("\n", start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const line = this.partial === "" ? piece : this.partial + piece;
      this.partial = "";
      if (line.length > this.maxChars) this.onOverlong();
      else this.onLine(line);
    }
    if (start >= chunk.length || this.skipping) return;
    this.partial += chunk.slice(start);
    if (this.partial.length > this.maxChars) {
      this.partial = "";
      this.skipping = true;
      this.onOverlong();
    }
  }

  /** Forgets a partial line (its file was truncated or replaced: it will never be completed). */
  reset(): boolean {
    const had = this.partial !== "" || this.skipping;
    this.partial = "";
    this.skipping = false;
    return had;
  }
}
