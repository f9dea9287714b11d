/**
 * Keeps the gate in place while the daemon runs. A firewall reload (`nft flush ruleset`, what `systemctl restart
 * nftables` does) or a hand edit removes or changes the table, and the protected ports are then open to every
 * host. The guard checks the gate whenever the firewall reports a change (nft monitor) and on a periodic tick (in
 * full, or through a heartbeat the monitor must echo; see tick()), and re-installs the whole gate with every grant
 * the daemon opened that is still due, with its remaining time.
 * Every re-install is logged at error level: something on the host is fighting the gate, and an operator must
 * know. Checks, deliberate updates and repairs run one at a time, in order.
 */
import { performance } from "node:perf_hooks";
import { ExitCode, TknockError } from "../src/errors.js";
import type { Clock, Firewall, GateSpec, Grant } from "../src/ports.js";

/** What `status` shows about the gate. */
export type GateHealth = {
  /** The gate was intact (or re-installed) at the last check. */
  readonly present: boolean;
  /** When `present` last changed (epoch ms). */
  readonly since: number;
  /** Re-installs since the daemon started. */
  readonly repairs: number;
  /** The last problem found ("table missing", "rules differ in chain input: ..."). */
  readonly lastProblem?: string;
};

export type GuardLog = {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
};

export type GateGuardOptions = {
  readonly firewall: Firewall;
  readonly clock: Clock;
  readonly log: GuardLog;
  /** The gate as the config says now (read at each check, so a reload is followed). */
  readonly gate: () => GateSpec;
  /** Between periodic checks. Default 1000. */
  readonly tickMs?: number;
  /**
   * With a firewall that has heartbeat(): a full check at least this often; on the ticks between, a heartbeat
   * that the firewall's change watcher echoes stands for one (nothing changed unseen). Default 10 000.
   */
  readonly fullCheckEveryMs?: number;
  /** A repair or check that keeps failing is logged once, then at most once per this. Default 60 000. */
  readonly failureLogEveryMs?: number;
};

type Tracked = { readonly src: string; readonly port: number; readonly expiresAtMs: number };

export class GateGuard {
  /** Grants the daemon opened, by "src|port", until they expire: what a re-install puts back. */
  private readonly grants = new Map<string, Tracked>();
  private present = false;
  private since: number;
  private repairs = 0;
  private lastProblem: string | undefined;
  private pendingReason: string | undefined;
  private installWanted = false;
  private loop: Promise<void> | undefined;
  private failures = 0;
  private lastFailureLogMs = Number.NEGATIVE_INFINITY;
  private readonly tickMs: number;
  private readonly failureLogEveryMs: number;
  private readonly fullCheckEveryMs: number;
  private lastFullCheckMs = Number.NEGATIVE_INFINITY;
  private ticking = false;
  private heartbeats = 0;

  constructor(private readonly opts: GateGuardOptions) {
    this.since = opts.clock.nowMs();
    this.tickMs = opts.tickMs ?? 1000;
    this.failureLogEveryMs = opts.failureLogEveryMs ?? 60_000;
    this.fullCheckEveryMs = opts.fullCheckEveryMs ?? 10_000;
  }

  health(): GateHealth {
    const h = { present: this.present, since: this.since, repairs: this.repairs };
    return this.lastProblem === undefined ? h : { ...h, lastProblem: this.lastProblem };
  }

  /** The daemon installed the gate itself. */
  markInstalled(): void {
    this.setPresent(true);
  }

  /** Grants the daemon asked the firewall for (before it answered: a knock that races a flush is restored too). */
  track(grants: readonly Grant[], atMs: number): void {
    for (const g of grants) this.grants.set(`${g.src}|${g.port}`, { src: g.src, port: g.port, expiresAtMs: atMs + g.openSeconds * 1000 });
  }

  /** Grants already in the firewall when the daemon started (a restart), so a later flush restores them too. */
  async adoptExisting(): Promise<void> {
    const nowMs = this.opts.clock.nowMs();
    try {
      for (const g of await this.opts.firewall.list()) {
        const key = `${g.src}|${g.port}`;
        if (g.expiresInSeconds !== undefined && g.expiresInSeconds > 0 && !this.grants.has(key)) {
          this.grants.set(key, { src: g.src, port: g.port, expiresAtMs: nowMs + g.expiresInSeconds * 1000 });
        }
      }
    } catch (err) {
      this.opts.log.warn({ err: errText(err) }, "could not read the grants already open; a flush before they expire will not restore them");
    }
  }

  /** The grants still due now, each with its remaining time (whole seconds, rounded up). */
  openGrants(nowMs: number): Grant[] {
    const out: Grant[] = [];
    for (const [key, g] of this.grants) {
      if (g.expiresAtMs <= nowMs) this.grants.delete(key);
      else out.push({ src: g.src, port: g.port, openSeconds: Math.ceil((g.expiresAtMs - nowMs) / 1000) });
    }
    return out;
  }

  /**
   * Periodic checks and the firewall's change events until the signal aborts. The events only make a repair
   * come sooner: the periodic check works without them.
   */
  start(signal: AbortSignal): void {
    if (signal.aborted) return;
    const timer = setInterval(() => void this.tick(), this.tickMs);
    timer.unref();
    signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    try {
      this.opts.firewall.watch?.((what) => void this.verify(`firewall event: ${what.slice(0, 120)}`), signal);
    } catch (err) {
      this.opts.log.warn({ err: errText(err) }, "cannot watch the firewall for changes; the gate is still checked every second");
    }
  }

  /**
   * One periodic tick: a full check (a listing of the whole table), or, between full checks, a heartbeat the
   * firewall's change watcher must echo. A heartbeat costs a line to a running nft; a full check a process start.
   * Any change to the gate reaches verify() through the watcher's event anyway; the tick is for a watcher that
   * died or stalled, which a missing echo shows one tick later.
   */
  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const nowMs = this.opts.clock.nowMs();
      const heartbeat = this.opts.firewall.heartbeat?.bind(this.opts.firewall);
      if (heartbeat && nowMs - this.lastFullCheckMs < this.fullCheckEveryMs && (await heartbeat())) {
        this.heartbeats++;
        return;
      }
      this.lastFullCheckMs = nowMs;
      await this.verify("periodic check");
    } finally {
      this.ticking = false;
    }
  }

  /** Heartbeats that stood for a full check (for tests and `status`). */
  get heartbeatCount(): number {
    return this.heartbeats;
  }

  /** Checks the gate now and repairs it if needed. Never rejects. Calls made while one runs share one more run. */
  verify(reason: string): Promise<void> {
    this.pendingReason ??= reason;
    return this.drain();
  }

  /** Installs the gate as the config now says (a deliberate change: not a repair), then checks it. */
  update(reason: string): Promise<void> {
    this.installWanted = true;
    this.pendingReason ??= reason;
    return this.drain();
  }

  /** Resolves when no check or repair is running. */
  async idle(): Promise<void> {
    await this.loop;
  }

  private drain(): Promise<void> {
    this.loop ??= (async () => {
      try {
        while (this.pendingReason !== undefined) {
          const reason = this.pendingReason;
          this.pendingReason = undefined;
          if (this.installWanted) {
            this.installWanted = false;
            try {
              await this.opts.firewall.install(this.opts.gate());
            } catch (err) {
              this.opts.log.error({ err: errText(err) }, "could not update the gate");
            }
          }
          await this.verifyOnce(reason);
        }
      } finally {
        this.loop = undefined;
      }
    })();
    return this.loop;
  }

  private async verifyOnce(reason: string): Promise<void> {
    const { firewall, clock, log } = this.opts;
    const gate = this.opts.gate();
    let problem;
    try {
      problem = await firewall.check(gate);
    } catch (err) {
      this.lastProblem = `cannot check the gate: ${errText(err)}`;
      this.failed("cannot check the gate", { err: errText(err) });
      return;
    }
    if (!problem) {
      this.setPresent(true);
      this.failures = 0;
      return;
    }
    this.setPresent(false);
    this.lastProblem = problem.message;
    const t0 = performance.now();
    try {
      const restored = await this.reinstall(gate);
      this.repairs++;
      this.failures = 0;
      this.setPresent(true);
      log.error(
        {
          problem: problem.message,
          detectedBy: reason,
          grantsRestored: restored,
          repairMs: Math.round((performance.now() - t0) * 100) / 100,
          repairs: this.repairs,
          atMs: clock.nowMs(),
        },
        `gate re-installed after an outside change: ${problem.message}`,
      );
    } catch (err) {
      this.failed(`gate missing or changed (${problem.message}) and re-installing it failed`, {
        problem: problem.message,
        detectedBy: reason,
        err: errText(err),
      });
    }
  }

  /** Returns how many grants were put back. */
  private async reinstall(gate: GateSpec): Promise<number> {
    const { firewall } = this.opts;
    await firewall.install(gate);
    let restored = await this.reopen();
    if (await firewall.check(gate)) {
      // install() adds and refills what it owns but leaves anything else someone put in the table (a chain, a
      // set of another type): replace the whole table, in one transaction.
      await firewall.install(gate, { replace: true });
      restored = await this.reopen();
      const still = await firewall.check(gate);
      if (still) throw new TknockError("TKNOCK_FIREWALL", `the gate is still wrong after replacing the table: ${still.message}`, ExitCode.system);
    }
    return restored;
  }

  private async reopen(): Promise<number> {
    const grants = this.openGrants(this.opts.clock.nowMs());
    if (grants.length > 0) await this.opts.firewall.open(grants);
    return grants.length;
  }

  private setPresent(present: boolean): void {
    if (this.present === present) return;
    this.present = present;
    this.since = this.opts.clock.nowMs();
  }

  /** Logged the first time, then at most once per failureLogEveryMs while it keeps failing (retried every tick). */
  private failed(message: string, fields: Record<string, unknown>): void {
    this.failures++;
    const nowMs = this.opts.clock.nowMs();
    if (this.failures === 1 || nowMs - this.lastFailureLogMs >= this.failureLogEveryMs) {
      this.lastFailureLogMs = nowMs;
      this.opts.log.error({ ...fields, failedAttempts: this.failures }, `${message}; retrying every second`);
    }
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
