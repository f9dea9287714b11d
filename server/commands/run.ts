import type { Command } from "commander";
import type { CliIo } from "../../src/cli-io.js";
import { loadServerConfig } from "../config/load.js";
import { createFirewall, createListener, dockerPresent } from "../backends.js";
import { Daemon } from "../daemon.js";
import { acquireDaemonLock } from "../daemon-lock.js";
import { createLogger } from "../logger.js";
import { preflightRun } from "../preflight.js";
import { configPathOf } from "./context.js";

export function registerRun(program: Command, io: CliIo): void {
  program
    .command("run")
    .summary("run the daemon in the foreground (checks everything it needs first)")
    .description(
      "run the daemon in the foreground (JSON logs on stdout; SIGHUP reloads and re-checks the gate, SIGTERM/SIGINT stop). It first checks rights, " +
        "state directory, interface, tcpdump (or the log source with listener log) and the firewall's programs (nft; iptables and ipset; the command backend's programs), and that no other daemon uses the state directory; any problem exits 1 before the gate is touched. " +
        "A removed or changed gate is re-installed within a second and logged as an error",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const configPath = configPathOf(cmd);
      const config = loadServerConfig(configPath); // fail early, before anything starts
      const log = createLogger(io.env["TKNOCK_LOG_LEVEL"] ?? config.logLevel);
      const { warnings } = await preflightRun(config);
      for (const w of warnings) log.warn(w);
      const lock = await acquireDaemonLock(config.stateDir, io.clock.nowMs());
      process.once("exit", lock.release); // also on an uncaught error; a SIGKILL leaves a stale file, detected by pid
      const daemon = Daemon.create({ configPath, log, clock: io.clock, createListener, createFirewall, dockerPresent });
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
