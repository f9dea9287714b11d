import type { Command } from "commander";
import type { ClientContext } from "../context.js";
import { parsePort, parseSecondsOption } from "../context.js";
import { knockProfile, waitForOpen } from "../knock.js";
import { pipeBothWays } from "../pipe.js";
import { addKnockOptions, DEFAULT_WAIT_SECONDS, knockContext, knockOptionsFrom, MAX_WAIT_SECONDS, type KnockFlags } from "./knock.js";

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
      const report = await knockProfile(kctx, store.find(host), knockOptionsFrom(flags));
      const { socket, elapsedMs } = await waitForOpen(kctx, report.target, port, flags.wait);
      kctx.info(`${report.target.address} port ${port} open after ${Math.round(elapsedMs)} ms`);
      await pipeBothWays(socket, ctx.io.stdin, ctx.io.stdout);
    });
}
