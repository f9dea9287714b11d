import type { Command } from "commander";
import type { ClientContext } from "../context.js";
import { parsePort, parseSecondsOption } from "../context.js";
import { ExitCode, TknockError } from "../../src/errors.js";
import { knockFlow, waitForOpen } from "../knock.js";
import { pipeBothWays } from "../pipe.js";
import { addKnockOptions, DEFAULT_WAIT_SECONDS, knockContext, knockOptionsFrom, MAX_WAIT_SECONDS, portCheckFrom, type KnockFlags } from "./knock.js";

type ProxyFlags = KnockFlags & { wait: number; verbose?: boolean };

export function registerProxy(program: Command, ctx: ClientContext): void {
  const cmd = program
    .command("proxy")
    .description("knock, wait for PORT to open, then join stdin/stdout to it (ssh_config: ProxyCommand tknock proxy %h %p)")
    .argument("<host>", "a profile name, or the host or address of a profile")
    .argument("<port>", "the TCP port to connect to once open", parsePort);
  addKnockOptions(cmd)
    .option("--wait <seconds>", "how long PORT may take to open", parseSecondsOption("--wait", 0.1, MAX_WAIT_SECONDS), DEFAULT_WAIT_SECONDS)
    .option("-v, --verbose", "report the knock and the wait on stderr")
    .action(async (host: string, port: number, flags: ProxyFlags, self: Command) => {
      // stdout carries the connection's bytes and nothing else; every message goes to stderr.
      const store = ctx.openStore(self);
      const kctx = knockContext(ctx, store, flags.verbose !== true);
      if (flags.probeUdp !== undefined) throw new TknockError("TKNOCK_USAGE", "proxy joins a TCP connection: --probe-udp does not apply", ExitCode.usage);
      const check = portCheckFrom(flags, port);
      const result = await knockFlow(kctx, store.find(host), { ...knockOptionsFrom(flags), probeFirst: true, waitSeconds: flags.wait, check });
      // Open: the look or the wait already holds the connection. Otherwise (the gate let us in but nothing
      // accepted, or another tknock opened it) one more bounded wait gets a connection to join.
      const socket = result.socket ?? (result.state === "reachable" ? undefined : (await waitForOpen(kctx, result.target, check, flags.wait)).socket);
      if (socket === undefined) {
        throw new TknockError(
          "TKNOCK_NOT_OPENED",
          `${result.target.address} port ${port} lets this address in but refuses TCP connections: is the service running?`,
          ExitCode.notOpened,
        );
      }
      await pipeBothWays(socket, ctx.io.stdin, ctx.io.stdout);
    });
}
