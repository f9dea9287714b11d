import type { Command } from "commander";
import { formatTable } from "../../src/cli-io.js";
import type { ClientContext } from "../context.js";
import { writeFileSync } from "node:fs";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { StoredProfile } from "../store.js";

/** What `list` shows of a profile: everything but the secret. */
export function publicView(p: StoredProfile): Record<string, unknown> {
  const { profile } = p;
  return {
    name: p.name,
    client: profile.client,
    host: profile.host,
    addr: p.addr,
    proto: profile.proto,
    knocks: profile.knocks,
    periodSeconds: profile.periodSeconds,
    ports: `${profile.portMin}-${profile.portMax}`,
    open: [...profile.open],
    lastStepUsed: p.lastStepUsed ?? null,
    timeOffsetSeconds: p.timeOffsetSeconds ?? 0,
  };
}

export function registerProfileCommands(program: Command, ctx: ClientContext): void {
  const { io } = ctx;
  program
    .command("list")
    .description("list the stored profiles (never their secrets)")
    .option("--json", "one JSON array")
    .action((flags: { json?: boolean }, self: Command) => {
      const profiles = ctx.openStore(self).list();
      if (flags.json === true) {
        io.out(JSON.stringify(profiles.map(publicView)));
        return;
      }
      if (profiles.length === 0) {
        io.err("no profiles: add one with `tknock add URI`");
        return;
      }
      const rows = [["NAME", "CLIENT", "ADDR", "PROTO", "KNOCKS", "PERIOD", "OPEN", "LAST-STEP"]];
      for (const p of profiles) {
        rows.push([
          p.name,
          p.profile.client,
          p.addr,
          p.profile.proto,
          String(p.profile.knocks),
          `${p.profile.periodSeconds}s`,
          p.profile.open.join(","),
          p.lastStepUsed === undefined ? "-" : String(p.lastStepUsed),
        ]);
      }
      io.out(formatTable(rows));
    });

  program
    .command("remove")
    .description("delete a stored profile")
    .argument("<name>", "the profile name")
    .action(async (name: string, _flags: unknown, self: Command) => {
      await ctx.openStore(self).remove(name);
      io.out(`removed ${name}`);
    });

  program
    .command("export")
    .description("print a profile's URI (and a QR code) to move it to another device: it holds the secret")
    .argument("<name>", "the profile name")
    .option("--qr", "also draw the URI as a QR code in the terminal (black on white)")
    .option("--qr-png <file>", "also write the QR code as a PNG file (mode 600: it holds the secret)")
    .action(async (name: string, flags: { qr?: boolean; qrPng?: string }, self: Command) => {
      const entry = ctx.openStore(self).find(name);
      io.err(`warning: this URI holds the secret of ${entry.name}: anyone who sees it can knock as you. Do not paste it into chats or tickets.`);
      io.out(entry.uri);
      if (flags.qr !== true && flags.qrPng === undefined) return;
      // The QR encoder is loaded only here: it would cost every other command its start time.
      const qr = await import("../qr.js");
      if (flags.qr === true) io.out(await qr.renderQrTerminal(entry.uri));
      if (flags.qrPng !== undefined) {
        try {
          writeFileSync(flags.qrPng, await qr.renderQrPng(entry.uri), { mode: 0o600 });
        } catch (cause) {
          throw new TknockError(
            "TKNOCK_FILE_UNWRITABLE",
            `cannot write ${flags.qrPng} (${(cause as NodeJS.ErrnoException).code ?? "error"}): check the folder`,
            ExitCode.usage,
            { cause },
          );
        }
        io.err(`wrote ${flags.qrPng} (mode 600)`);
      }
    });
}
