import { Option, type Command } from "commander";
import type { CliIo } from "../../src/cli-io.js";
import { loadServerConfig } from "../config/load.js";
import { createFirewall, createListener } from "../backends.js";
import { Daemon } from "../daemon.js";
import { acquireDaemonLock } from "../daemon-lock.js";
import { createLogger } from "../logger.js";
import { LOG_FORMATS, processLogFormat, type LogFormat } from "../log-format.js";
import { preflightRun } from "../preflight.js";
import { configPathOf } from "./context.js";

export function registerRun(program: Command, io: CliIo): void {
  program
    .command("run")
    .summary("run the daemon in the foreground (checks everything it needs first)")
    .description(
      "run the daemon in the foreground (JSON logs on stdout, with syslog priorities under journald; SIGHUP reloads and re-checks the gate, SIGTERM/SIGINT stop). It first checks rights, " +
        "state directory, interface, tcpdump (or the log source with listener log) and nft, and that no other daemon uses the state directory; any problem exits 1 before the gate is touched. " +
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
      const daemon = Daemon.create({ configPath, log, clock: io.clock, createListener, createFirewall });
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
        lock.release();
        process.off("exit", lock.release);
      }
    });
}
