import { statSync } from "node:fs";
import { join } from "node:path";
import { loadServerConfig } from "./config/load.js";
import { clientProfile, type ClientsFile, type ServerConfig } from "./config/schema.js";
import type { Clock, Firewall, GateSpec, Grant, Listener, ListenerStats, ObservedKnock } from "../src/ports.js";
import { readClients } from "./clients-file.js";
import { DaemonMonitor } from "./daemon-monitor.js";
import { DaemonActivity, fanOut, type DaemonObserver } from "./daemon-observer.js";
import { GateGuard, type GateHealth } from "./gate-guard.js";
import type { ParsedProcNet } from "./local-services.js";
import { ssListeningSocketsReader } from "./listening-sockets-ss.js";
import { LogLimiter } from "./log-limit.js";
import type { Logger } from "./logger.js";
import type { Decision } from "./matcher/decision.js";
import { Matcher, type MatcherClient, type MatcherStats } from "./matcher/matcher.js";
import { matcherOptionsFromConfig } from "./matcher/options.js";
import { PrefilterWatch } from "./prefilter-watch.js";
import { ReplayLog, replayRecordOf } from "./replay-log.js";
import { runtimeStatusPath } from "./runtime-status.js";
import { SERVICE_POLL_MS, ServiceWatch } from "./service-exemptions.js";
import { StepStore } from "./state.js";
import { SpaHandler } from "./spa/spa-handler.js";
import { spaClientsOf, spaListenerProblem } from "./spa/spa-clients.js";
import { allowsSequence } from "../src/protocol/spa/mode.js";

export type DaemonDeps = {
  readonly configPath: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly createListener: (config: ServerConfig, log: Logger) => Listener;
  readonly createFirewall: (config: ServerConfig, log: Logger) => Firewall;
  /** The host's listening sockets; default: /proc/net of this network namespace. */
  readonly readListeningSockets?: () => Promise<ParsedProcNet>;
  readonly servicePollMs?: number;
  /** Whether Docker's chains are present (gateForward "auto"); default: none are. */
  readonly dockerPresent?: (config: ServerConfig) => Promise<boolean>;
  /** Told each decision and the state-write and firewall timings (the metrics endpoint); see daemon-observer.ts. */
  readonly observer?: DaemonObserver;
};

/**
 * The daemon wires listener -> matcher -> (persist, then open) -> firewall. The matcher is pure and
 * synchronous; persistence is synchronous too, so a step is durable before the port opens.
 */
export class Daemon {
  private config: ServerConfig;
  private clients: ClientsFile;
  private matcher: Matcher;
  private readonly steps: StepStore;
  private readonly replays: ReplayLog;
  private readonly firewall: Firewall;
  private readonly listener: Listener;
  private readonly guard: GateGuard;
  private readonly services: ServiceWatch;
  private readonly prefilter: PrefilterWatch;
  private readonly spa: SpaHandler;
  /** The watch-set refresh in progress, so ticks never run two at once. */
  private refreshing: Promise<void> | undefined;
  /** The clients file's stat when it was last read; the 1 s poll reloads when it differs. */
  private clientsStamp: string | undefined;
  // Every refusal and report is still counted and recorded in replays.jsonl (which has its own cap).
  private readonly refusalLines = new LogLimiter(LOG_LINES_PER_SECOND);
  private readonly bruteForceLines = new LogLimiter(LOG_LINES_PER_SECOND);
  private readonly activity = new DaemonActivity();
  private readonly observe: Required<DaemonObserver>;
  private readonly counters = { opened: 0, refused: 0, bruteforce: 0, openErrors: 0, reloads: 0, futureKnocks: 0 };
  /** Config gateForward, with "auto" decided at start (Docker's chains present or not). */
  private gateForward = false;
  /** Aborts the listener when the daemon cannot go on safely; run() then throws `fatal`. */
  private readonly halt = new AbortController();
  private fatal: unknown;

  private constructor(private readonly deps: DaemonDeps) {
    const { log, clock } = deps;
    this.observe = fanOut([this.activity, deps.observer]);
    this.config = loadServerConfig(deps.configPath);
    this.clientsStamp = statStamp(this.config.clientsFile); // before the read: a change during it is seen later
    this.clients = readClients(this.config.clientsFile);
    const nowMs = clock.nowMs();
    this.steps = StepStore.open(join(this.config.stateDir, "state.json"), {
      nowMs,
      clients: this.clientPeriods(),
      skewWindows: this.config.skewWindows,
      diagnosticWindows: this.config.diagnosticWindows,
      log: (msg: string) => log.warn(msg),
    });
    this.replays = new ReplayLog(join(this.config.stateDir, "replays.jsonl"), {
      ...this.config.replayLog,
      onWriteError: (r) =>
        log.error(
          { path: r.path, error: r.error, lost: r.lost },
          "cannot write the replay record: refused knocks are not being recorded (free space or fix the state directory)",
        ),
    });
    this.matcher = new Matcher(this.matcherClients(), this.config, nowMs);
    this.spa = new SpaHandler(
      {
        log,
        persistNonces: (nonces, client) => this.persisted(() => this.steps.setSpaNonces(nonces), "could not persist the SPA nonce; not opening", client),
        open: (grants, fields, atMs) => this.openGrants(grants, fields, atMs),
        record: (r) => this.replays.append(r),
        openSeconds: (client) => this.clients.clients[client]?.openSeconds ?? this.config.openSeconds,
        decided: (d, knock) => this.observe.spaDecided(d, knock),
      },
      spaClientsOf(this.clients),
      { skewWindows: this.config.skewWindows, nonces: this.steps.spaNonces(), ...(this.steps.failedClosed ? { failClosedAtMs: nowMs } : {}) },
      nowMs,
    );
    this.firewall = deps.createFirewall(this.config, log);
    this.listener = deps.createListener(this.config, log);
    this.prefilter = new PrefilterWatch({
      enabled: this.config.listener === "nflog" && this.config.prefilter,
      profiles: () => Object.entries(this.clients.clients).map(([name, r]) => clientProfile(name, r)),
      options: () => ({ knockRange: this.config.knockRange, skewWindows: this.config.skewWindows, toleratedWrongKnocks: this.config.toleratedWrongKnocks }),
      firewall: this.firewall,
      log,
    });
    // With heartbeats a tick costs a line to a running nft, not a process start, so it can come twice a second.
    this.guard = new GateGuard({ firewall: this.firewall, clock, log, gate: () => this.gateSpec(), tickMs: this.firewall.heartbeat ? 500 : 1000 });
    this.services = new ServiceWatch({
      // Through sock_diag (ss): /proc/net/tcp would walk every connection of the host on each poll.
      read: deps.readListeningSockets ?? ssListeningSocketsReader({ onFallback: (why) => log.warn({ why }, "local services are read from /proc/net") }),
      log,
      gate: () => ({ knockRange: this.config.knockRange, protect: this.config.protect }),
    });
  }

  /** The whole gate as it should be now: config plus the local services found in the knock range. */
  gateSpec(): GateSpec {
    return {
      protectedPorts: this.config.protect,
      knockRange: this.config.knockRangeDrop ? this.config.knockRange : undefined,
      exemptServices: this.services.current,
      ...(this.config.listener === "log" && !this.config.logExisting ? { logKnocks: this.config.knockRange } : {}),
      ...(this.config.listener === "nflog"
        ? {
            nflogKnocks: {
              group: this.config.nflogGroup,
              ...this.config.knockRange,
              ...(this.prefilter.active ? prefilterGate(this.config.knockTimeoutMs) : {}),
            },
          }
        : {}),
      ...(this.gateForward ? { gateForward: true } : {}),
    };
  }

  /** The gate's state for `status`: present or not, since when, re-installs so far, the last problem found. */
  gateHealth(): GateHealth {
    return this.guard.health();
  }

  static create(deps: DaemonDeps): Daemon {
    return new Daemon(deps);
  }

  private clientPeriods(): { name: string; periodSeconds: number }[] {
    return Object.entries(this.clients.clients).map(([name, r]) => ({ name, periodSeconds: r.periodSeconds }));
  }

  private matcherClients(): MatcherClient[] {
    // An SPA-only client (enroll --mode spa) has no sequence to accept.
    return Object.entries(this.clients.clients)
      .filter(([, r]) => allowsSequence(r.mode))
      .map(([name, r]) => ({
        name,
        profile: clientProfile(name, r),
        open: r.open,
        lastAcceptedStep: this.steps.get(name),
        spentSteps: this.steps.spent(name),
      }));
  }

  /** Runs until the signal aborts. The nftables table stays when it returns: the service stays gated. */
  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.deps;
    await this.services.refresh();
    const fwd = this.config.gateForward;
    this.gateForward = fwd === "auto" ? ((await this.deps.dockerPresent?.(this.config)) ?? false) : fwd;
    this.prefilter.compute(this.deps.clock.nowMs());
    await this.firewall.install(this.gateSpec());
    await this.prefilter.apply();
    this.guard.markInstalled();
    await this.guard.adoptExisting();
    const guarding = new AbortController();
    this.guard.start(guarding.signal);
    log.info(
      {
        protect: this.config.protect,
        knockRange: this.config.knockRange,
        knockRangeDrop: this.config.knockRangeDrop,
        exemptServices: this.services.current,
        clients: Object.keys(this.clients.clients).length,
        listener: this.listener.name,
        firewall: this.firewall.name,
        gateForward: this.gateForward,
      },
      "tknock-server running",
    );
    this.warnSpaListener();
    // daemon.json for `status`, and a loud error while capture is down (see daemon-monitor.ts).
    const monitor = new DaemonMonitor({
      path: runtimeStatusPath(this.config.stateDir),
      log,
      clock: this.deps.clock,
      listenerHealth: this.listener.health?.bind(this.listener),
      gateHealth: () => this.gateHealth(),
      prefilter: () => (this.config.listener === "nflog" ? this.prefilter.report() : undefined),
      activity: () => this.activity.report(),
    });
    monitor.tick();
    // Step boundaries are also checked lazily per packet; the timer keeps tables fresh when no packets come.
    // It also picks up `enroll` and `revoke` without a restart. It compares the file's stat with the one taken
    // when the clients were read (not fs.watchFile, whose first stat is taken later, so a change between the
    // read and that stat would go unseen until the next change).
    const tick = setInterval(() => {
      monitor.tick();
      this.matcher.tick(this.deps.clock.nowMs());
      this.spa.tick(this.deps.clock.nowMs());
      this.refreshWatch(false);
      if (statStamp(this.config.clientsFile) !== this.clientsStamp) this.reloadClients("clients file changed");
    }, 1000);
    const stopServices = this.services.watch(this.deps.servicePollMs ?? SERVICE_POLL_MS, async () => {
      // Through the guard: a deliberate change queued behind any check or repair, and not mistaken for one.
      await this.guard.update("local services changed");
      log.info({ exemptServices: this.services.current }, "local services changed; gate updated");
    });
    const stopListener = (): void => this.halt.abort();
    signal.addEventListener("abort", stopListener, { once: true });
    if (signal.aborted) stopListener();
    try {
      await this.listener.run((k) => this.onKnock(k), this.halt.signal);
    } finally {
      signal.removeEventListener("abort", stopListener);
      clearInterval(tick);
      stopServices();
      monitor.stopped();
      guarding.abort();
      await this.guard.idle();
      await this.firewall.close();
      log.info({ ...this.counters, listener: this.listener.stats(), spa: this.spa.stats() }, "tknock-server stopped; the gate stays in place");
    }
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what stop() was given, as it was caught
    if (this.fatal !== undefined) throw this.fatal;
  }

  /** Stops the daemon with an error (exit 1); the gate stays, so the protected ports stay closed. */
  private stop(err: unknown): void {
    if (this.fatal !== undefined) return;
    this.fatal = err;
    this.deps.log.error({ err: err instanceof Error ? err.message : String(err) }, "stopping: cannot keep replay protection across a restart");
    this.halt.abort();
  }

  /** Persists a state change; false when it failed (logged; fatal when the state file could not even be moved aside). */
  private persisted(write: () => void, what: string, client: string): boolean {
    const t0 = performance.now();
    try {
      write();
      this.observe.stateWritten(performance.now() - t0, true);
      return true;
    } catch (err) {
      this.observe.stateWritten(performance.now() - t0, false);
      this.deps.log.error({ err: err instanceof Error ? err.message : String(err), client }, what);
      if ((err as { code?: unknown }).code === "TKNOCK_STATE_UNPROTECTED") this.stop(err);
      return false;
    }
  }

  /** SIGHUP: re-read config and clients. Fields that need a restart (listener, paths) are reported. */
  reload(): void {
    const { log } = this.deps;
    let matcherChanged: boolean;
    try {
      const next = loadServerConfig(this.deps.configPath);
      const restartNeeded = (
        [
          "interface",
          "listener",
          "logSource",
          "logExisting",
          "nflogGroup",
          "prefilter",
          "firewall",
          "clientsFile",
          "stateDir",
          "knockRange",
          "tcpdump",
          "nftables",
          "iptables",
          "command",
          "gateForward",
          "metrics",
        ] as const
      ).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.config[k]));
      if (restartNeeded.length > 0) log.warn({ fields: restartNeeded }, "these config changes take effect after a restart");
      const gateChanged = JSON.stringify(next.protect) !== JSON.stringify(this.config.protect) || next.knockRangeDrop !== this.config.knockRangeDrop;
      matcherChanged = JSON.stringify(matcherOptionsFromConfig(next)) !== JSON.stringify(matcherOptionsFromConfig(this.config));
      this.config = { ...next, ...pick(this.config, restartNeeded) };
      if (gateChanged) void this.guard.update("gate settings changed on reload");
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, "config reload failed; keeping the running config");
      void this.guard.verify("SIGHUP");
      return;
    }
    this.reloadClients("SIGHUP");
    // A reload is what an operator tries when something looks wrong: put the gate back now if it is not there.
    void this.guard.verify("SIGHUP");
    if (matcherChanged) {
      // Windows, timeouts and limits are fixed in a matcher: start a fresh one (sources' progress restarts; the
      // accepted steps come from the state store, so replay protection carries over).
      this.matcher = new Matcher(this.matcherClients(), this.config, this.deps.clock.nowMs());
      this.spa.reconfigure(spaClientsOf(this.clients), this.config.skewWindows, this.deps.clock.nowMs());
      log.info(matcherOptionsFromConfig(this.config), "matcher settings reloaded");
    }
  }

  /** The prefilter's watch set for the current windows; a turn on or off re-installs the gate through the guard. */
  private refreshWatch(force: boolean): void {
    if (this.refreshing) {
      if (force) this.prefilter.invalidate();
      return;
    }
    const changed = this.prefilter.compute(this.deps.clock.nowMs(), force);
    this.refreshing = (async () => {
      if (changed) await this.guard.update(this.prefilter.active ? "kernel prefilter on" : "kernel prefilter off");
      await this.prefilter.apply();
    })()
      .catch((err: unknown) => {
        this.prefilter.invalidate();
        this.deps.log.error({ err: err instanceof Error ? err.message : String(err) }, "cannot update the prefilter's watch set; retrying next second");
      })
      .finally(() => (this.refreshing = undefined));
  }

  private reloadClients(why: string): void {
    const { log } = this.deps;
    // Taken whatever the outcome, so a broken file is reported once, not every second, and its fix is seen.
    this.clientsStamp = statStamp(this.config.clientsFile);
    try {
      this.clients = readClients(this.config.clientsFile);
    } catch (err) {
      // Fail closed on a broken file would lock everyone out; keep the last good list and say so.
      log.error({ err: err instanceof Error ? err.message : String(err) }, "clients reload failed; keeping the previous clients");
      return;
    }
    const names = new Set(Object.keys(this.clients.clients));
    // A failed write must not escape the 1 s timer; the stale step only makes a same-named new client's first
    // window stricter.
    for (const [name] of this.steps.all()) {
      if (!names.has(name)) this.persisted(() => this.steps.forget(name), "could not drop a revoked client's step from the state file", name);
    }
    this.matcher.setClients(this.matcherClients(), this.deps.clock.nowMs());
    this.spa.setClients(spaClientsOf(this.clients), this.deps.clock.nowMs());
    this.warnSpaListener();
    this.refreshWatch(true);
    this.counters.reloads++;
    log.info({ why, clients: names.size }, "clients reloaded");
  }

  private onKnock(knock: ObservedKnock): void {
    // The matcher's windows only move forward, so one knock stamped in the future (a corrupt pcap record can say
    // 2106) would move them past every real knock until the clock catches up: drop it. Capture timestamps come
    // from the same clock as ours and are never ahead of it by more than jitter.
    if (!(knock.atMs <= this.deps.clock.nowMs() + MAX_FUTURE_MS)) {
      if (this.counters.futureKnocks++ === 0) {
        this.deps.log.warn(
          { src: String(knock.src).slice(0, 64), atMs: knock.atMs },
          "knock timestamped in the future dropped; further ones are only counted (stats: futureKnocks)",
        );
      }
      return;
    }
    // A datagram shaped like an SPA packet is SPA's alone: it is no wrong knock of any sequence.
    if (knock.payload !== undefined && this.spa.handle(knock)) return;
    let decision: Decision;
    try {
      decision = this.matcher.onKnock(knock);
    } catch (err) {
      // A matcher bug must not kill the daemon; nothing opens on an error (fail closed).
      this.deps.log.error({ err: String(err), src: knock.src }, "matcher error; knock dropped");
      return;
    }
    if (decision.kind !== "ignored") this.observe.decided(decision, knock);
    this.act(decision, knock);
  }

  private act(d: Decision, knock: ObservedKnock): void {
    const { log } = this.deps;
    switch (d.kind) {
      case "open": {
        // Durable before the port opens. A step that could not be stored stays spent: the matcher refuses it
        // from now on, and the state file was moved aside so a restart fails closed (StepStore.persist).
        if (!this.persisted(() => this.steps.record(d.client, d.step), "could not persist the accepted step; not opening", d.client)) return;
        const openSeconds = this.clients.clients[d.client]?.openSeconds ?? this.config.openSeconds;
        const grants: Grant[] = d.open.map((port) => ({ src: d.src, port, openSeconds, client: d.client }));
        this.openGrants(grants, { client: d.client, src: d.src, step: d.step, ports: d.open }, knock.atMs);
        return;
      }
      case "refuse": {
        this.counters.refused++;
        if (d.reason === "skew" && (d.offsetWindows ?? 0) > 0) {
          // The matcher spent this future step; it must stay spent after a restart too.
          this.persisted(
            () => this.steps.setSpent(d.client, this.matcher.spentSteps(d.client)),
            "could not persist the step spent by a skew refusal",
            d.client,
          );
        }
        this.record(d, knock);
        const hint = d.reason === "skew" ? `client clock is off by about ${d.offsetWindows ?? "?"} windows: fix its time (NTP)` : undefined;
        const admitted = this.refusalLines.admit(knock.atMs);
        if (admitted)
          log.warn(
            { reason: d.reason, client: d.client, src: d.src, step: d.step, offsetWindows: d.offsetWindows, hint, ...suppressed(admitted) },
            "knock refused",
          );
        return;
      }
      case "bruteforce": {
        this.counters.bruteforce++;
        this.record(d, knock);
        const admitted = this.bruteForceLines.admit(knock.atMs);
        if (admitted)
          log.warn({ src: d.src, failures: d.failures, banned: d.banned, ...suppressed(admitted) }, "brute force: many failed sequences from one source");
        return;
      }
      default:
        return;
    }
  }

  /** Loud, not fatal: sequence clients still work; SPA clients would wait for packets that never arrive. */
  private warnSpaListener(): void {
    const problem = spaListenerProblem(this.config, spaClientsOf(this.clients).length);
    if (problem !== undefined) this.deps.log.error({ listener: this.config.listener }, problem);
  }

  /**
   * Opens grants whose knock is already durable (the accepted step, or SPA's nonce), then logs "opened" with
   * `fields`, or the failure. Sequence knocks and SPA packets both come here.
   */
  private openGrants(grants: Grant[], fields: Record<string, unknown>, atMs: number): void {
    const { log } = this.deps;
    this.guard.track(grants, this.deps.clock.nowMs());
    const t0 = performance.now();
    let opening: Promise<void>;
    try {
      opening = this.firewall.open(grants);
    } catch (err) {
      // An adapter that throws instead of rejecting must not take the listener down with it.
      opening = Promise.reject(err);
    }
    opening.then(
      () => {
        this.observe.firewallUpdated(performance.now() - t0, true);
        this.counters.opened++;
        log.info(
          {
            ...fields,
            openSeconds: grants[0]?.openSeconds,
            firewallMs: round(performance.now() - t0),
            knockToOpenMs: round(this.deps.clock.nowMs() - atMs),
          },
          // With firewall "none" nothing was opened: its own line says "would open"; this one must not say otherwise.
          this.firewall.name === "none" ? "accepted (firewall none: nothing opened)" : "opened",
        );
      },
      (err: unknown) => {
        this.observe.firewallUpdated(performance.now() - t0, false);
        this.counters.openErrors++;
        log.error({ err: err instanceof Error ? err.message : String(err), client: fields["client"], src: fields["src"] }, "firewall open failed");
        // Perhaps the gate was just flushed: check now rather than at the next tick (a repair re-adds this grant).
        void this.guard.verify("firewall open failed");
      },
    );
  }

  /** Appends to replays.jsonl; the log counts its own write errors and never throws. */
  private record(d: Decision, knock: ObservedKnock): void {
    const r = replayRecordOf(d, knock.atMs);
    if (r) this.replays.append(r);
  }

  /** What the metrics endpoint reads at each scrape. */
  snapshot(): { listener: ListenerStats; matcher: MatcherStats; gate: GateHealth; activeGrants: number; capturing: boolean | undefined } {
    return {
      listener: this.listener.stats(),
      capturing: this.listener.health?.().capturing,
      matcher: this.matcher.stats(),
      gate: this.gateHealth(),
      activeGrants: this.guard.openGrants(this.deps.clock.nowMs()).length,
    };
  }

  stats(): Record<string, unknown> {
    return { ...this.counters, listener: this.listener.stats(), matcher: this.matcher.stats(), spa: this.spa.stats() };
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<T> {
  const out: Partial<T> = {};
  for (const k of keys) out[k] = o[k];
  return out;
}

/** What identifies one version of a file (an atomic rename changes the inode; chmod changes ctime and mode). */
function statStamp(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}:${st.uid}`;
  } catch {
    return undefined;
  }
}

/** How far ahead of the daemon's clock a knock's timestamp may be (clock jitter between capture and us). */
const MAX_FUTURE_MS = 5000;

/** Warning lines of one kind per second; beyond it they are counted (see LogLimiter). */
const LOG_LINES_PER_SECOND = 20;

function suppressed(a: { suppressedBefore: number }): { suppressedBefore?: number } {
  return a.suppressedBefore > 0 ? { suppressedBefore: a.suppressedBefore } : {};
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/**
 * The prefilter's part of the gate. A source stays active (its tripwire hits logged) a little longer than the
 * matcher keeps its progress after a knock (knockTimeoutMs), so no source with progress loses its tripwires.
 */
export function prefilterGate(knockTimeoutMs: number): { watchOnly: true; activeSeconds: number } {
  return { watchOnly: true, activeSeconds: Math.ceil(knockTimeoutMs / 1000) + 1 };
}
