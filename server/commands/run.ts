import { Option, type Command } from "commander";
import type { CliIo } from "../../src/cli-io.js";
import { loadServerConfig } from "../config/load.js";
import { createFirewall, createListener, dockerPresent } from "../backends.js";
import { Daemon } from "../daemon.js";
import { acquireDaemonLock } from "../daemon-lock.js";
import { createLogger } from "../logger.js";
import { LOG_FORMATS, processLogFormat, type LogFormat } from "../log-format.js";
import { preflightRun } from "../preflight.js";
import { configPathOf } from "./context.js";
import { DaemonMetrics } from "../metrics/daemon-metrics.js";
import { parseListenAddress } from "../metrics/listen-address.js";
import { startMetricsServer, type MetricsServer } from "../metrics/metrics-server.js";
import type { Logger } from "../logger.js";

export function registerRun(program: Command, io: CliIo): void {
  program
    .command("run")
    .summary("run the daemon in the foreground (checks everything it needs first)")
    .description(
      "run the daemon in the foreground (JSON logs on stdout, with syslog priorities under journald; SIGHUP reloads and re-checks the gate, SIGTERM/SIGINT stop). It first checks rights, " +
        "state directory, interface, tcpdump (or the log source with listener log) and the firewall's programs (nft; iptables and ipset; the command backend's programs), and that no other daemon uses the state directory; any problem exits 1 before the gate is touched. " +
        "A removed or changed gate is re-installed within a second and logged as an error",
    )
    .addOption(
      new Option(
        "--log-format <format>",
        "json; journal: each line behind its syslog priority (<4> warning), the default when stdout is the journal; pretty: for a terminal",
      ).choices(LOG_FORMATS),
    )
    .action(async (opts: { logFormat?: LogFormat }, cmd: Command) => {
      const configPath = configPathOf(cmd);
      const config = loadServerConfig(configPath); // fail early, before anything starts
      const log = createLogger(io.env["TKNOCK_LOG_LEVEL"] ?? config.logLevel, undefined, opts.logFormat ?? processLogFormat(io.env));
      const { warnings } = await preflightRun(config);
      for (const w of warnings) log.warn(w);
      const lock = await acquireDaemonLock(config.stateDir, io.clock.nowMs());
      process.once("exit", lock.release); // also on an uncaught error; a SIGKILL leaves a stale file, detected by pid
      const metrics = config.metrics === null ? undefined : new DaemonMetrics(config.listener);
      const daemon = Daemon.create({
        configPath,
        log,
        clock: io.clock,
        createListener,
        createFirewall,
        dockerPresent,
        ...(metrics ? { observer: metrics } : {}),
      });
      const metricsServer = config.metrics && metrics ? await serveMetrics(config.metrics, metrics, daemon, log) : undefined;
      const stop = new AbortController();
      const onStop = (sig: string) => () => {
        log.info({ signal: sig }, "stopping");
        stop.abort();
      };
      const onHup = (): void => daemon.reload();
      const onUsr1 = (): void => log.info(daemon.stats(), "stats");
      process.on("SIGTERM", onStop("SIGTERM"));
      process.on("SIGINT", onStop("SIGINT"));
      process.on("SIGHUP", onHup);
      process.on("SIGUSR1", onUsr1);
      try {
        await daemon.run(stop.signal);
      } finally {
        process.off("SIGHUP", onHup);
        process.off("SIGUSR1", onUsr1);
        await metricsServer?.close();
        lock.release();
        process.off("exit", lock.release);
      }
    });
}

/** Starts the metrics endpoint (config metrics.listen, validated by the config loader). */
async function serveMetrics(config: { listen: string }, metrics: DaemonMetrics, daemon: Daemon, log: Logger): Promise<MetricsServer> {
  const listen = parseListenAddress(config.listen);
  if (listen === undefined) throw new Error(`metrics.listen ${config.listen} passed the config check but does not parse`);
  const server = await startMetricsServer(listen, metrics, () => daemon.snapshot());
  if (listen.loopback) log.info({ listen: server.address }, "metrics endpoint listening");
  // The counts tell when knocks arrive and fail: the admin chose to show them beyond this host.
  else log.warn({ listen: server.address }, "metrics endpoint listening on a non-loopback address: restrict who can reach it");
  return server;
}
