/** Collects a daemon's JSON log lines from its stdout and lets callers wait for a line that matches. */
export type LogLine = { level: number; msg: string; [key: string]: unknown };

export class JsonLogCollector {
  readonly lines: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  /** Feeds a stream of newline-separated JSON (non-JSON lines are kept as error-level lines). */
  attach(stream: NodeJS.ReadableStream | null | undefined): void {
    let buffered = ""; // per stream: a line cut off by a killed daemon must not run into the next one's
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let parsed: LogLine;
        try {
          parsed = JSON.parse(line) as LogLine;
        } catch {
          parsed = { level: 50, msg: `non-JSON output: ${line.slice(0, 200)}` };
        }
        this.push(parsed);
      }
    });
  }

  private push(l: LogLine): void {
    this.lines.push(l);
    this.waiters = this.waiters.filter((w) => (w.pred(l) ? (w.resolve(l), false) : true));
  }

  /** Resolves with the first line from index fromIndex on (past or future) that matches, or rejects after timeoutMs. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, fromIndex = 0): Promise<LogLine> {
    const seen = this.lines.slice(fromIndex).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred,
        resolve: (l: LogLine): void => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no daemon log line matched within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}
