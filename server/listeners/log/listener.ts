/**
 * The log listener: follows the firewall's log of knock-range packets instead of capturing them (no tcpdump, no
 * CAP_NET_RAW in the listener). Sources: `journald` (a `journalctl -k -f -o json` child), `kmsg` (/dev/kmsg,
 * read through a `cat` child so that stopping never leaves a blocked read behind) and `file:PATH` (followed like
 * `tail -F`). A child that dies is restarted with backoff, as the pcap listener restarts tcpdump. Each line is
 * parsed by log-line.ts; a line that is not a knock into the knock range is counted (stats().malformed), never
 * thrown.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Listener, ListenerHealth, ListenerStats, ObservedKnock } from "../../../src/ports.js";
import { FileFollower } from "./file-follower.js";
import { LineSplitter } from "./line-splitter.js";
import { MAX_LINE_CHARS, parseJournalJson, parseKmsgRecord, parseNetfilterLine, syslogLineTimeMs } from "./log-line.js";

export type LogSource = "journald" | "kmsg" | `file:${string}`;

/** The prefix of the gate's own log rule (ruleset.ts); with it, lines from other log rules are ignored. */
export const TKNOCK_LOG_PREFIX = "tknock: ";

export type LogListenerOptions = {
  readonly source: LogSource;
  readonly knockRange: { readonly min: number; readonly max: number };
  /** Only lines carrying this text are knocks (the gate's prefix); undefined: every netfilter line (--log-existing). */
  readonly requirePrefix?: string | undefined;
  readonly journalctlPath?: string;
  /** Default /dev/kmsg. */
  readonly kmsgPath?: string;
  /** Runs the child through a wrapper (tests); default none. */
  readonly argvPrefix?: readonly string[];
  readonly log?: (level: "info" | "warn" | "error", message: string, fields: Record<string, unknown>) => void;
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number; readonly stableMs?: number };
  readonly nowMs?: () => number;
};

export function parseLogSource(text: string): LogSource | undefined {
  if (text === "journald" || text === "kmsg") return text;
  if (/^file:\/./.test(text)) return text as LogSource;
  return undefined;
}

export function createLogListener(options: LogListenerOptions): Listener & { health(): ListenerHealth } {
  return new LogListener(options);
}

class LogListener implements Listener {
  readonly name = "log";
  private readonly counters: ListenerStats = { packets: 0, knocks: 0, malformed: 0, starts: 0, kernelDrops: 0 };
  private onKnock: (k: ObservedKnock) => void = () => {};
  private reading = false;
  private sinceMs = Date.now();
  private failedStarts = 0;
  private lastProblem: string | undefined;
  private readonly now: () => number;
  /** Wall-clock ms at boot, for kmsg's microseconds since boot (CLOCK_MONOTONIC, as process.hrtime). */
  private readonly bootMs: number;
  private readonly startUsec: number;

  constructor(private readonly o: LogListenerOptions) {
    this.now = o.nowMs ?? Date.now;
    const monoUs = Number(process.hrtime.bigint() / 1000n);
    this.bootMs = Date.now() - monoUs / 1000;
    this.startUsec = monoUs;
  }

  stats(): ListenerStats {
    return { ...this.counters };
  }

  health(): ListenerHealth {
    return { capturing: this.reading, sinceMs: this.sinceMs, failedStarts: this.failedStarts, ...(this.lastProblem ? { lastProblem: this.lastProblem } : {}) };
  }

  private setReading(on: boolean, problem?: string): void {
    if (problem !== undefined) this.lastProblem = problem;
    if (on !== this.reading) {
      this.reading = on;
      this.sinceMs = Date.now();
      if (on) this.o.log?.("info", "log source reading", { source: this.o.source, prefix: this.o.requirePrefix ?? null });
    }
  }

  /** One netfilter text line with the time its source gave (undefined: now). */
  private handle(text: string, atMs: number | undefined): void {
    this.counters.packets++;
    if (this.o.requirePrefix !== undefined && !text.includes(this.o.requirePrefix)) {
      this.counters.malformed++;
      return;
    }
    const k = parseNetfilterLine(text);
    if (k === undefined || k.dstPort < this.o.knockRange.min || k.dstPort > this.o.knockRange.max) {
      this.counters.malformed++;
      return;
    }
    const now = this.now();
    this.counters.knocks++;
    // A source clock a little ahead of ours (kmsg's clock drifts from the monotonic one) must not date a knock in the future.
    this.onKnock({ src: k.src, dstPort: k.dstPort, proto: k.proto, atMs: atMs === undefined ? now : Math.min(atMs, now) });
  }

  private splitter(onLine: (line: string) => void): LineSplitter {
    return new LineSplitter(onLine, () => this.counters.malformed++, MAX_LINE_CHARS * 4);
  }

  async run(onKnock: (knock: ObservedKnock) => void, signal: AbortSignal): Promise<void> {
    this.onKnock = onKnock;
    const src = this.o.source;
    if (src.startsWith("file:")) return this.runFile(src.slice("file:".length), signal);
    if (src === "journald") {
      const argv = [this.o.journalctlPath ?? "journalctl", "-k", "-f", "-o", "json", "-n", "0"];
      return this.runChild(argv, signal, (line) => {
        const j = parseJournalJson(line);
        if (j === undefined) this.counters.malformed++;
        else this.handle(j.text, j.atMs);
      });
    }
    return this.runChild(["cat", this.o.kmsgPath ?? "/dev/kmsg"], signal, (line) => {
      if (line.startsWith(" ")) return; // a record's continuation (dictionary) line
      const r = parseKmsgRecord(line);
      if (r === undefined) {
        this.counters.malformed++;
        return;
      }
      // Reading /dev/kmsg from a new descriptor starts with the whole ring buffer: only what came after our start is news.
      if (r.usecSinceBoot < this.startUsec) return;
      this.handle(r.text, this.bootMs + r.usecSinceBoot / 1000);
    });
  }

  private runFile(path: string, signal: AbortSignal): Promise<void> {
    this.counters.starts++;
    const split = this.splitter((line) => this.handle(line, syslogLineTimeMs(line)));
    const follower = new FileFollower(path, {
      onData: (t) => split.push(t),
      onReset: () => {
        if (split.reset()) this.counters.malformed++;
      },
    });
    follower.start();
    this.setReading(true);
    return new Promise((resolve) => {
      const stop = (): void => {
        follower.stop();
        this.setReading(false);
        resolve();
      };
      if (signal.aborted) stop();
      else signal.addEventListener("abort", stop, { once: true });
    });
  }

  private async runChild(argv: readonly string[], signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
    const initialMs = this.o.backoff?.initialMs ?? 500;
    const maxMs = this.o.backoff?.maxMs ?? 30_000;
    const stableMs = this.o.backoff?.stableMs ?? 5_000;
    let delay = initialMs;
    while (!signal.aborted) {
      const startedAt = Date.now();
      const problem = await this.runChildOnce(argv, signal, onLine);
      this.setReading(false, problem);
      if (signal.aborted) break;
      if (Date.now() - startedAt >= stableMs) {
        delay = initialMs;
        this.failedStarts = 0;
      } else {
        this.failedStarts++;
      }
      this.o.log?.("warn", "log source stopped; restarting", { source: this.o.source, problem, restartInMs: delay });
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            r();
          },
          { once: true },
        );
      });
      delay = Math.min(delay * 2, maxMs);
    }
  }

  /** Runs the child until it exits or the signal aborts; resolves with why it stopped. */
  private runChildOnce(argv: readonly string[], signal: AbortSignal, onLine: (line: string) => void): Promise<string> {
    const full = [...(this.o.argvPrefix ?? []), ...argv];
    this.counters.starts++;
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn(full[0] as string, full.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
      } catch (err) {
        resolve(`cannot start ${argv[0]}: ${(err as Error).message}`);
        return;
      }
      const split = this.splitter(onLine);
      let stderr = "";
      let spawnError: string | undefined;
      child.stdout?.setEncoding("utf8");
      child.stdout?.on("data", (d: string) => {
        this.setReading(true);
        split.push(d);
      });
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (d: string) => (stderr = (stderr + d).slice(-500)));
      child.once("spawn", () => this.setReading(true));
      child.once("error", (err) => (spawnError = `cannot start ${argv[0]}: ${err.message}`));
      const kill = (): void => {
        child.kill("SIGTERM");
      };
      signal.addEventListener("abort", kill, { once: true });
      child.once("close", (code, sig) => {
        signal.removeEventListener("abort", kill);
        const last = stderr.trim().split("\n").pop() ?? "";
        resolve(spawnError ?? `${argv[0]} exited (${code ?? sig})${last ? `: ${last}` : ""}`);
      });
    });
  }
}
