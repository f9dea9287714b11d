/**
 * The pcap listener: runs tcpdump with a BPF filter that keeps only possible knocks, parses its pcap stream
 * (server/packets/pcap.ts) and hands each knock to the callback synchronously. tcpdump sees packets before netfilter,
 * so knocks arrive even when the firewall drops them. If tcpdump dies it is restarted with exponential backoff; the
 * backoff starts over once a tcpdump has captured for `stableMs`, so a second kill soon after a recovery costs
 * half a second of capture again, not the grown delay. health() says whether packets are being captured now.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { ExitCode, TknockError } from "../../../src/errors.js";
import { PcapStreamParser } from "../../packets/pcap.js";
import type { Listener, ListenerHealth, ListenerStats, ObservedKnock } from "../../../src/ports.js";
import { addressesOfInterfaces, buildTcpdumpArgv, normalizeLocalAddresses, type KnockRange } from "./capture-filter.js";

export type LogLevel = "info" | "warn" | "error";
/** A pino-like logger (pino's Logger fits), or a plain function. */
export type PcapLog =
  | ((level: LogLevel, message: string, fields: Record<string, unknown>) => void)
  | { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

export type PcapListenerOptions = {
  /** Interface to capture on, or "any". Ignored with nflogGroup. */
  readonly interface: string;
  /**
   * Read the packets the firewall logs to this NFLOG group (tcpdump -i nflog:N) instead of capturing on the
   * interface: only what the gate's `log group N` rule passes reaches user space. No filter, no address polling.
   */
  readonly nflogGroup?: number;
  readonly knockRange: KnockRange;
  /** This host's addresses for the filter; empty or absent: every interface address, re-read while running. */
  readonly localAddresses?: readonly string[];
  /** Default "tcpdump" (found on PATH). */
  readonly tcpdumpPath?: string;
  /** Runs tcpdump through a wrapper, e.g. ["ip", "netns", "exec", "ns1"] (tests); default none. */
  readonly argvPrefix?: readonly string[];
  /** Kernel capture buffer (tcpdump -B), default 16384 KiB. */
  readonly bufferKiB?: number;
  /**
   * Bytes kept per packet, default 192: SLL2 and two VLAN tags (28) + a whole IPv6 SPA datagram (128); a SYN is
   * shorter anyway. With nflogGroup 256: the NFLOG attributes (timestamp, interface, hardware header...) come
   * before the packet.
   */
  readonly snaplen?: number;
  readonly log?: PcapLog;
  /** Restart delays: first `initialMs` (500), doubling to `maxMs` (30 s), back to initial after `stableMs` (5 s) of capturing. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number; readonly stableMs?: number };
  /** A tcpdump that has not said "listening on" after this long is stopped and restarted (default 10 s). */
  readonly startTimeoutMs?: number;
  /** How often to re-read the interface addresses when localAddresses is empty (default 30 s; 0 = never). */
  readonly addressPollMs?: number;
};

/** tcpdump's own counters (libpcap pcap_stats), cumulative for the running tcpdump. */
export type CaptureStats = {
  readonly captured: number;
  readonly receivedByFilter: number;
  readonly droppedByKernel: number;
  readonly droppedByInterface: number;
};

export type CaptureState = {
  /** A tcpdump process exists. */
  readonly running: boolean;
  /** tcpdump said "listening on": the filter is attached and packets are being captured. */
  readonly capturing: boolean;
  readonly pid: number | undefined;
  readonly linkType: number | undefined;
};

export type PcapListener = Listener & {
  /**
   * Asks the running tcpdump for its counters (SIGUSR1; tcpdump answers on stderr). Resolves undefined when no
   * tcpdump is capturing or it does not answer within timeoutMs. Also refreshes stats().kernelDrops.
   */
  requestCaptureStats(timeoutMs?: number): Promise<CaptureStats | undefined>;
  captureState(): CaptureState;
  health(): ListenerHealth;
};

const DEFAULTS = {
  tcpdumpPath: "tcpdump",
  bufferKiB: 16_384,
  snaplen: 192,
  /**
   * For NFLOG, -s sizes the buffer libpcap reads each netlink datagram into (128 + snaplen): it must hold a whole
   * batch of messages (the prefilter's first ports are batched, up to the kernel's buffer of a page or two), or
   * libpcap fails with "Message truncated" and tcpdump exits. The gate's rules copy only 128 bytes per packet.
   */
  nflogSnaplen: 65_535,
  initialMs: 500,
  maxMs: 30_000,
  stableMs: 5_000,
  startTimeoutMs: 10_000,
  addressPollMs: 30_000,
};
const STDERR_KEEP_LINES = 5;

export function createPcapListener(options: PcapListenerOptions): PcapListener {
  return new TcpdumpListener(options);
}

/** Fails with a clear message (TKNOCK_TCPDUMP_MISSING) when tcpdump cannot be run; for a check at start. */
export function checkTcpdump(tcpdumpPath = DEFAULTS.tcpdumpPath, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(tcpdumpPath, ["--version"], { timeout: timeoutMs }, (err) => {
      const code = (err as NodeJS.ErrnoException | null)?.code;
      if (code === "ENOENT") reject(missingTcpdump(tcpdumpPath));
      else if (code === "EACCES")
        reject(
          new TknockError(
            "TKNOCK_TCPDUMP_MISSING",
            `cannot run ${tcpdumpPath} (EACCES): make it executable (chmod 755) or set tcpdump.path to a working tcpdump`,
            ExitCode.system,
          ),
        );
      else if (err?.killed)
        reject(
          new TknockError(
            "TKNOCK_TCPDUMP_MISSING",
            `${tcpdumpPath} --version did not answer within ${timeoutMs} ms: check the tcpdump install (apt-get install --reinstall tcpdump)`,
            ExitCode.system,
          ),
        );
      else if (err)
        reject(
          new TknockError(
            "TKNOCK_TCPDUMP_MISSING",
            `${tcpdumpPath} --version failed (${err.message.split("\n")[0] ?? ""}): reinstall tcpdump (apt-get install --reinstall tcpdump) or fix tcpdump.path`,
            ExitCode.system,
          ),
        );
      else resolve();
    });
  });
}

function missingTcpdump(path: string): TknockError {
  return new TknockError("TKNOCK_TCPDUMP_MISSING", `tcpdump not found at "${path}": install it (apt-get install tcpdump) or set tcpdump.path`, ExitCode.system);
}

function toLogFn(log: PcapLog | undefined): (level: LogLevel, message: string, fields: Record<string, unknown>) => void {
  if (log === undefined) return () => {};
  if (typeof log === "function") return log;
  return (level, message, fields) => log[level](fields, message);
}

const STATS_PATTERNS = [
  ["captured", /(\d+) packets? captured/],
  ["receivedByFilter", /(\d+) packets? received by filter/],
  ["droppedByKernel", /(\d+) packets? dropped by kernel/],
  ["droppedByInterface", /(\d+) packets? dropped by interface/],
] as const;

type RunOutcome = {
  /** False when no process was started (no local address to filter on yet). */
  started: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: NodeJS.ErrnoException;
  /** Why we stopped it, or why it could not start. */
  reason?: string;
  /** Last lines tcpdump wrote on stderr (its error messages). */
  stderr?: string;
  /** How long it captured (after "listening on"), 0 if it never did. */
  capturedMs: number;
};

class TcpdumpListener implements PcapListener {
  readonly name = "pcap";
  private readonly log: (level: LogLevel, message: string, fields: Record<string, unknown>) => void;
  private readonly parser: PcapStreamParser;
  private onKnock: (knock: ObservedKnock) => void = () => {};
  private starts = 0;
  /** Kernel drops reported by tcpdumps that have exited, plus the running one's latest report. */
  private dropsOfPastRuns = 0;
  private interfaceDropsOfPastRuns = 0;
  private current: CaptureStats = { captured: 0, receivedByFilter: 0, droppedByKernel: 0, droppedByInterface: 0 };
  private child: ChildProcess | undefined;
  private capturing = false;
  /** When the running tcpdump said "listening on". */
  private capturingSinceMs: number | undefined;
  /** When `capturing` last changed (health()). */
  private stateSinceMs = Date.now();
  private failedStarts = 0;
  private lastProblem: string | undefined;
  private running = false;
  private statsWaiters: ((s: CaptureStats | undefined) => void)[] = [];

  constructor(private readonly options: PcapListenerOptions) {
    this.log = toLogFn(options.log);
    this.parser = new PcapStreamParser((k) => this.onKnock(k));
    // Validate now so a config error surfaces at start, not as a restart loop.
    buildTcpdumpArgv(this.argvOptions(options.localAddresses?.length ? options.localAddresses : ["127.0.0.1"]));
  }

  stats(): ListenerStats {
    const c = this.parser.counters;
    return {
      packets: c.packets,
      knocks: c.knocks,
      malformed: c.malformed,
      starts: this.starts,
      kernelDrops: this.dropsOfPastRuns + this.current.droppedByKernel,
      interfaceDrops: this.interfaceDropsOfPastRuns + this.current.droppedByInterface,
    };
  }

  health(): ListenerHealth {
    return {
      capturing: this.capturing,
      sinceMs: this.stateSinceMs,
      failedStarts: this.failedStarts,
      ...(this.lastProblem !== undefined ? { lastProblem: this.lastProblem } : {}),
    };
  }

  captureState(): CaptureState {
    return { running: this.child !== undefined, capturing: this.capturing, pid: this.child?.pid, linkType: this.parser.linkType };
  }

  requestCaptureStats(timeoutMs = 2000): Promise<CaptureStats | undefined> {
    const child = this.child;
    // Before "listening on" tcpdump may not have its SIGUSR1 handler yet, and the default action would kill it.
    if (!child || !this.capturing || child.exitCode !== null) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.statsWaiters = this.statsWaiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, timeoutMs);
      const waiter = (s: CaptureStats | undefined): void => {
        clearTimeout(timer);
        resolve(s);
      };
      this.statsWaiters.push(waiter);
      child.kill("SIGUSR1");
    });
  }

  async run(onKnock: (knock: ObservedKnock) => void, signal: AbortSignal): Promise<void> {
    if (this.running) throw new TknockError("TKNOCK_LISTENER_BUSY", "the pcap listener is already running");
    this.running = true;
    this.onKnock = onKnock;
    this.stateSinceMs = Date.now();
    const initialMs = this.options.backoff?.initialMs ?? DEFAULTS.initialMs;
    const maxMs = this.options.backoff?.maxMs ?? DEFAULTS.maxMs;
    const stableMs = this.options.backoff?.stableMs ?? DEFAULTS.stableMs;
    let delayMs = initialMs;
    try {
      while (!signal.aborted) {
        const outcome = await this.runOnce(signal);
        if (signal.aborted) break;
        if (outcome.reason === "addresses changed") {
          delayMs = initialMs;
          continue;
        }
        // Only time spent capturing counts: a tcpdump that hangs before "listening on" is not a recovery.
        if (outcome.capturedMs >= stableMs) {
          delayMs = initialMs;
          this.failedStarts = 0;
        } else {
          this.failedStarts++;
        }
        this.logExit(outcome, delayMs);
        await sleep(delayMs, signal);
        delayMs = Math.min(delayMs * 2, maxMs);
      }
    } finally {
      this.running = false;
      this.onKnock = () => {};
    }
  }

  private argvOptions(localAddresses: readonly string[]): Parameters<typeof buildTcpdumpArgv>[0] {
    const o = this.options;
    return {
      interface: o.interface,
      knockRange: o.knockRange,
      localAddresses,
      tcpdumpPath: o.tcpdumpPath ?? DEFAULTS.tcpdumpPath,
      argvPrefix: o.argvPrefix ?? [],
      snaplen: o.snaplen ?? (o.nflogGroup !== undefined ? DEFAULTS.nflogSnaplen : DEFAULTS.snaplen),
      bufferKiB: o.bufferKiB ?? DEFAULTS.bufferKiB,
      nflogGroup: o.nflogGroup,
    };
  }

  private fixedAddresses(): boolean {
    // NFLOG needs no addresses: the gate's rule in the input hook already sees only packets for this host.
    return (this.options.localAddresses?.length ?? 0) > 0 || this.options.nflogGroup !== undefined;
  }

  private currentAddresses(): string[] {
    return this.fixedAddresses() ? normalizeLocalAddresses(this.options.localAddresses ?? []) : addressesOfInterfaces();
  }

  /** Runs one tcpdump until it exits (or is stopped); never rejects. */
  private runOnce(signal: AbortSignal): Promise<RunOutcome> {
    let argv: string[];
    let addresses: string[];
    try {
      addresses = this.currentAddresses();
      argv = buildTcpdumpArgv(this.argvOptions(addresses));
    } catch (err) {
      // No address yet (e.g. before DHCP): retry with backoff, addresses may appear.
      return Promise.resolve({ started: false, code: null, signal: null, reason: err instanceof Error ? err.message : String(err), capturedMs: 0 });
    }
    this.starts++;
    this.parser.reset();
    this.current = { captured: 0, receivedByFilter: 0, droppedByKernel: 0, droppedByInterface: 0 };
    this.setCapturing(false);
    const stderrTail: string[] = [];
    let reason: string | undefined;
    const [cmd, ...args] = argv;
    const child = spawn(cmd as string, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const stop = (why: string): void => {
      reason ??= why;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        // tcpdump exits on SIGTERM at once; SIGKILL only if it hangs (e.g. stopped).
        setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"), 2000).unref();
      }
    };

    child.stdout?.on("data", (chunk: Buffer) => {
      if (reason !== undefined) return;
      if (!this.parser.push(chunk)) {
        this.log("warn", "tcpdump stream could not be parsed; restarting tcpdump", { reason: this.parser.fatal });
        stop("unparsable stream");
      }
    });
    let partial = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      if (partial.length > 4096) partial = ""; // a line without end is not tcpdump talking; drop it
      for (const line of lines) this.onStderrLine(line, stderrTail);
    });

    const onAbort = (): void => stop("stopped");
    signal.addEventListener("abort", onAbort, { once: true });
    const startTimeoutMs = this.options.startTimeoutMs ?? DEFAULTS.startTimeoutMs;
    const startTimer = setTimeout(() => {
      if (!this.capturing) stop(`tcpdump did not start capturing within ${startTimeoutMs} ms`);
    }, startTimeoutMs);
    startTimer.unref();
    let poll: NodeJS.Timeout | undefined;
    const pollMs = this.options.addressPollMs ?? DEFAULTS.addressPollMs;
    if (!this.fixedAddresses() && pollMs > 0) {
      const key = addresses.join(",");
      poll = setInterval(() => {
        let now: string;
        try {
          now = addressesOfInterfaces().join(",");
        } catch {
          return;
        }
        if (now !== key) {
          this.log("info", "interface addresses changed; restarting tcpdump with a new filter", {});
          stop("addresses changed");
        }
      }, pollMs);
      poll.unref();
    }

    return new Promise<RunOutcome>((resolve) => {
      let done = false;
      const finish = (outcome: RunOutcome): void => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        clearTimeout(startTimer);
        if (poll) clearInterval(poll);
        if (partial !== "") this.onStderrLine(partial, stderrTail);
        this.parser.end();
        this.dropsOfPastRuns += this.current.droppedByKernel;
        this.interfaceDropsOfPastRuns += this.current.droppedByInterface;
        this.current = { captured: 0, receivedByFilter: 0, droppedByKernel: 0, droppedByInterface: 0 };
        this.child = undefined;
        const capturedMs = this.capturingSinceMs === undefined ? 0 : Date.now() - this.capturingSinceMs;
        this.setCapturing(false);
        for (const w of this.statsWaiters.splice(0)) w(undefined);
        resolve({
          ...outcome,
          capturedMs,
          ...(reason !== undefined ? { reason } : {}),
          ...(stderrTail.length > 0 ? { stderr: stderrTail.join(" | ") } : {}),
        });
      };
      child.once("error", (err: NodeJS.ErrnoException) => {
        // Spawn failures (ENOENT, EACCES) never produce a process, so no "close" may follow.
        if (child.pid === undefined) finish({ started: true, code: null, signal: null, spawnError: err, capturedMs: 0 });
        else this.log("error", "tcpdump process error", { err: err.message });
      });
      child.once("close", (code: number | null, sig: NodeJS.Signals | null) => finish({ started: true, code, signal: sig, capturedMs: 0 }));
    });
  }

  private onStderrLine(line: string, tail: string[]): void {
    const text = line.trim();
    if (text === "") return;
    if (text.includes("listening on")) {
      this.setCapturing(true);
      this.log("info", "tcpdump capturing", { line: text, pid: this.child?.pid });
      return;
    }
    let matched = false;
    const next = { ...this.current };
    for (const [key, re] of STATS_PATTERNS) {
      const m = re.exec(text);
      if (m) {
        next[key] = Number(m[1]);
        matched = true;
      }
    }
    if (matched) {
      this.current = next;
      // SIGUSR1 answers in one line; at exit the counters come one per line, kernel drops last but one.
      if (/dropped by kernel/.test(text)) for (const w of this.statsWaiters.splice(0)) w(next);
      return;
    }
    tail.push(text.slice(0, 300));
    if (tail.length > STDERR_KEEP_LINES) tail.shift();
  }

  private setCapturing(capturing: boolean): void {
    if (capturing !== this.capturing) this.stateSinceMs = Date.now();
    this.capturing = capturing;
    this.capturingSinceMs = capturing ? (this.capturingSinceMs ?? Date.now()) : undefined;
  }

  private logExit(outcome: RunOutcome, delayMs: number): void {
    const path = this.options.tcpdumpPath ?? DEFAULTS.tcpdumpPath;
    const fields: Record<string, unknown> = { restartInMs: delayMs, starts: this.starts };
    if (!outcome.started) {
      this.lastProblem = `cannot start tcpdump yet: ${outcome.reason ?? "unknown reason"}`;
      this.log("warn", this.lastProblem, fields);
      return;
    }
    if (outcome.spawnError) {
      const cmd = this.options.argvPrefix?.[0] ?? path;
      if (outcome.spawnError.code === "ENOENT") {
        const err = missingTcpdump(path);
        fields["code"] = err.code;
        this.lastProblem = cmd === path ? err.message : `cannot run "${cmd}": not found`;
      } else {
        this.lastProblem = `cannot start tcpdump: ${outcome.spawnError.message}`;
      }
      this.log("error", this.lastProblem, fields);
      return;
    }
    if (outcome.code !== null) fields["exitCode"] = outcome.code;
    if (outcome.signal !== null) fields["signal"] = outcome.signal;
    if (outcome.stderr !== undefined) fields["stderr"] = outcome.stderr;
    if (outcome.reason !== undefined) fields["reason"] = outcome.reason;
    const how = outcome.code !== null ? `exit ${outcome.code}` : `signal ${outcome.signal ?? "?"}`;
    this.lastProblem = `tcpdump stopped (${outcome.reason ?? how})${outcome.stderr !== undefined ? `: ${outcome.stderr}` : ""}`.slice(0, 300);
    this.log("warn", "tcpdump exited; restarting it", fields);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
