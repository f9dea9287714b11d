/**
 * The command backend: the daemon runs the operator's open command for each grant and the close command when the
 * grant's time is up (pf, firewalld, a cloud security group: anything with a command line). Unlike the kernel
 * backends, nothing expires by itself: the grants live in a file in the state directory, so a daemon that died
 * during a grant closes it when it starts again. Until then the port stays open: this backend is fail-open if the
 * daemon dies, and says so at start.
 *
 * There is no gate to check or repair: what the commands manage is the operator's, so check() always finds the
 * gate intact and the protected ports must be closed by the operator's own rules.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../../config/load.js";
import { ExitCode, TknockError } from "../../../src/errors.js";
import { systemClock, type Clock, type Firewall, type GateProblem, type GateSpec, type Grant, type KnockProto } from "../../../src/ports.js";
import { validateGate, validateGrants, type ValidGrant } from "../validate.js";
import { expandCommand, usesProto } from "./command-template.js";

export type CommandLog = {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
};

const silent: CommandLog = { info: () => {}, warn: () => {}, error: () => {} };

/** Runs one argv; rejects with a one-line reason. Injected in unit tests. */
export type CommandRunner = (argv: readonly string[], timeoutMs: number) => Promise<void>;

export type CommandFirewallOptions = {
  readonly open: readonly string[];
  readonly close: readonly string[];
  /** What {proto} runs for. Default tcp and udp. */
  readonly protos?: readonly KnockProto[];
  readonly timeoutMs?: number;
  /** The file that lists the grants the daemon opened and has not closed yet (mode 600). */
  readonly statePath: string;
  readonly clock?: Clock;
  readonly log?: CommandLog;
  /** How often the daemon looks for grants whose time is up. Default 1000. */
  readonly sweepMs?: number;
  readonly run?: CommandRunner;
};

type Entry = {
  readonly src: string;
  readonly port: number;
  readonly openSeconds: number;
  readonly client?: string;
  readonly expiresAtMs: number;
};

type StateFile = { readonly version: 1; readonly grants: readonly Entry[] };

/** A failed close is retried after this, doubling up to MAX_RETRY_MS, and logged each time (it is a port left open). */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 60_000;
const MAX_OUTPUT_CHARS = 300;

export const FAIL_OPEN_WARNING =
  'firewall "command": grants are closed by this daemon, not by the kernel; if the daemon dies during a grant, the port stays open until it starts again';

export class CommandFirewall implements Firewall {
  readonly name = "command";
  private readonly clock: Clock;
  private readonly log: CommandLog;
  private readonly run: CommandRunner;
  private readonly protos: readonly KnockProto[];
  private readonly timeoutMs: number;
  private grants: Map<string, Entry> | undefined;
  /** Per grant, the commands in flight: an open and a close for the same grant never overlap or reorder. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly retryAtMs = new Map<string, { atMs: number; delayMs: number }>();
  private installed = false;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(private readonly opts: CommandFirewallOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silent;
    this.run = opts.run ?? runCommand;
    this.protos = opts.protos ?? ["tcp", "udp"];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /**
   * The first install of a daemon closes every grant an earlier run left open (it died, or stopped with a close
   * failing), then starts the sweep that closes grants when their time is up. Later installs change nothing.
   */
  async install(gate: GateSpec): Promise<void> {
    validateGate(gate);
    if (this.installed) return;
    const grants = this.load();
    this.installed = true;
    this.log.warn({}, FAIL_OPEN_WARNING);
    if (grants.size > 0) {
      this.log.warn({ grants: grants.size }, "closing the grants an earlier run left open");
      await Promise.all([...grants.keys()].map((key) => this.closeGrant(key, true)));
    }
    this.timer = setInterval(() => void this.sweep(), this.opts.sweepMs ?? 1000);
    this.timer.unref();
  }

  async check(gate: GateSpec): Promise<GateProblem | undefined> {
    validateGate(gate);
    return undefined;
  }

  async open(grants: readonly Grant[]): Promise<void> {
    const valid = validateGrants(grants);
    if (!this.installed) throw firewallError("the command firewall is not installed: install() first");
    const map = this.load();
    const nowMs = this.clock.nowMs();
    for (const g of valid) {
      map.set(key(g), {
        src: g.src,
        port: g.port,
        openSeconds: g.openSeconds,
        ...(g.client !== undefined ? { client: g.client } : {}),
        expiresAtMs: nowMs + g.openSeconds * 1000,
      });
      this.retryAtMs.delete(key(g));
    }
    // Written before the command runs: a daemon killed in between closes the grant when it starts again.
    if (valid.length > 0) this.persist();
    const results = await Promise.allSettled(valid.map((g) => this.serial(key(g), () => this.runAll(this.opts.open, g))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw firewallError(`open command failed: ${errText(failed.reason)}`, failed.reason);
  }

  async list(): Promise<Grant[]> {
    const nowMs = this.clock.nowMs();
    return [...this.load().values()].map((e) => ({
      src: e.src,
      port: e.port,
      openSeconds: e.openSeconds,
      ...(e.client !== undefined ? { client: e.client } : {}),
      // 0: due to close, but its close has not run (the daemon is down) or failed (retried): still open.
      expiresInSeconds: Math.max(0, Math.floor((e.expiresAtMs - nowMs) / 1000)),
    }));
  }

  /** Closes every grant listed (what the open commands added); rejects if a close failed (it stays listed). */
  async remove(): Promise<void> {
    this.stopSweep();
    this.installed = false;
    const keys = [...this.load().keys()];
    await Promise.all(keys.map((k) => this.closeGrant(k, true)));
    const left = this.load().size;
    if (left > 0) throw firewallError(`${left} grant(s) could not be closed: see the log, fix the close command, and run this again`);
  }

  /**
   * A daemon that installed closes every open grant as it stops: no timer is left to close them (fail closed).
   * An instance that only read (status) changes nothing.
   */
  async close(): Promise<void> {
    this.stopSweep();
    if (this.installed) {
      this.installed = false;
      const keys = [...this.load().keys()];
      if (keys.length > 0) this.log.info({ grants: keys.length }, "closing the open grants as the daemon stops");
      await Promise.all(keys.map((k) => this.closeGrant(k, true)));
    }
    await Promise.all([...this.chains.values()]);
  }

  /** Closes the grants whose time is up; one sweep at a time. Tests call it after moving a fake clock. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        const nowMs = this.clock.nowMs();
        const due = [...this.load().entries()].filter(([k, e]) => e.expiresAtMs <= nowMs && (this.retryAtMs.get(k)?.atMs ?? 0) <= nowMs);
        await Promise.all(due.map(([k]) => this.closeGrant(k, false)));
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  private stopSweep(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Runs the close command(s); on success the grant is forgotten, on failure it stays and is retried later. */
  private closeGrant(k: string, force: boolean): Promise<void> {
    return this.serial(k, async () => {
      const entry = this.load().get(k);
      if (!entry) return;
      // A re-open between the sweep's look and now moved the expiry: leave it.
      if (!force && entry.expiresAtMs > this.clock.nowMs()) return;
      const grant: ValidGrant = validateGrants([entry])[0] as ValidGrant;
      try {
        await this.runAll(this.opts.close, grant);
      } catch (err) {
        const prev = this.retryAtMs.get(k);
        const delayMs = Math.min(MAX_RETRY_MS, prev ? prev.delayMs * 2 : FIRST_RETRY_MS);
        this.retryAtMs.set(k, { atMs: this.clock.nowMs() + delayMs, delayMs });
        this.log.error(
          { src: entry.src, port: entry.port, client: entry.client, err: errText(err), retryInMs: delayMs },
          "close command failed: the port is still open for this source; retrying",
        );
        return;
      }
      this.retryAtMs.delete(k);
      this.load().delete(k);
      this.persist();
      this.log.info({ src: entry.src, port: entry.port, client: entry.client }, "grant closed");
    });
  }

  private async runAll(template: readonly string[], g: ValidGrant): Promise<void> {
    const protos: readonly KnockProto[] = usesProto(template) ? this.protos : ["tcp"];
    for (const proto of protos) await this.run(expandCommand(template, g, proto), this.timeoutMs);
  }

  private serial(k: string, task: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(k) ?? Promise.resolve()).then(task, task);
    const settled = next.catch(() => undefined);
    this.chains.set(k, settled);
    void settled.then(() => {
      if (this.chains.get(k) === settled) this.chains.delete(k);
    });
    return next;
  }

  private load(): Map<string, Entry> {
    if (this.grants) return this.grants;
    let text: string;
    try {
      text = readFileSync(this.opts.statePath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return (this.grants = new Map<string, Entry>());
      throw firewallError(`cannot read ${this.opts.statePath}: ${errText(err)}`, err);
    }
    const grants = new Map<string, Entry>();
    try {
      const doc = JSON.parse(text) as StateFile;
      for (const raw of doc.grants) {
        const [g] = validateGrants([raw]);
        if (g && typeof raw.expiresAtMs === "number") grants.set(key(g), { ...raw, src: g.src });
      }
    } catch (err) {
      // The grants it listed may be open; a daemon cannot know which to close. Loud, and the operator decides.
      throw firewallError(`${this.opts.statePath} is damaged (${errText(err)}): close its grants by hand, then delete it`, err);
    }
    return (this.grants = grants);
  }

  private persist(): void {
    const doc: StateFile = { version: 1, grants: [...this.load().values()] };
    try {
      writeFileAtomic(this.opts.statePath, `${JSON.stringify(doc)}\n`, 0o600);
    } catch (err) {
      this.log.error({ path: this.opts.statePath, err: errText(err) }, "cannot write the command grants file: a restart would not close these grants");
    }
  }
}

function key(g: { src: string; port: number }): string {
  return `${g.src}|${g.port}`;
}

function firewallError(message: string, cause?: unknown): TknockError {
  return new TknockError("TKNOCK_FIREWALL", message, ExitCode.system, cause === undefined ? undefined : { cause });
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** execFile, no shell; a non-zero exit or a timeout is a failure naming the program and its stderr. */
export const runCommand: CommandRunner = (argv, timeoutMs) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) return reject(new Error("empty command"));
    execFile(file, args, { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT"
          ? "program not found"
          : err.killed
            ? `no exit within ${timeoutMs} ms`
            : String(stderr).trim().replace(/\s+/g, " ") || `exit ${String(code)}`;
      reject(new Error(`${file}: ${why.length > MAX_OUTPUT_CHARS ? `${why.slice(0, MAX_OUTPUT_CHARS - 3)}...` : why}`));
    });
  });
