import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { parseIntOption, type CliIo } from "../../src/cli-io.js";
import { ExitCode, TknockError } from "../../src/errors.js";
import { readFileError } from "../../src/fs-errors.js";
import { formatProfileUri, parseProfileUri } from "../../src/protocol/profile-uri.js";
import { enrolmentUriOf } from "../../src/protocol/web-link.js";
import type { ClientContext } from "../context.js";
import { isValidProfileName } from "../store.js";
import { CLIENT_PERMISSION_FIX } from "../store-errors.js";
import { parseTimeOffset } from "./knock.js";

type AddFlags = { name?: string; addr?: string; qr?: string; index?: number; force?: boolean; timeOffset?: number };

const ADDR_RE = /^[A-Za-z0-9:.[\]_%-]{1,253}$/;

/** Reads the first line of input: `tknock add -` keeps the secret out of shell history. */
async function readFirstLine(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stdin) {
    text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (text.includes("\n") || text.length > 8192) break;
  }
  return text.split("\n")[0]?.trim() ?? "";
}

async function uriFrom(io: CliIo, uri: string | undefined, qrFile: string | undefined, index: number | undefined): Promise<string> {
  if (uri !== undefined && qrFile !== undefined) throw new TknockError("TKNOCK_USAGE", "give a URI or --qr FILE, not both", ExitCode.usage);
  if (index !== undefined && qrFile === undefined)
    throw new TknockError("TKNOCK_USAGE", "--index picks one of several QR codes: it needs --qr FILE", ExitCode.usage);
  if (qrFile !== undefined) {
    let image: Buffer;
    try {
      image = readFileSync(qrFile);
    } catch (cause) {
      throw readFileError(cause, qrFile, { permissionFix: CLIENT_PERMISSION_FIX });
    }
    // QR and image decoders are loaded only here: they would cost every other command its start time.
    const { enrolmentUriFromImage } = await import("../qr-import.js");
    return enrolmentUriFromImage(image, index);
  }
  if (uri === undefined) throw new TknockError("TKNOCK_USAGE", "add needs a URI, - (read it from stdin) or --qr FILE", ExitCode.usage);
  return uri === "-" ? readFirstLine(io.stdin) : uri;
}

export const SUBCOMMAND_NAMES = ["add", "list", "remove", "set", "export", "sequence", "proxy", "knock", "help"];

export function registerAdd(program: Command, ctx: ClientContext): void {
  program
    .command("add")
    .description("store an enrolment URI (from `tknock-server enroll`) as a profile")
    .argument("[uri]", "otpauth://totp/tknock:CLIENT@HOST?secret=... (or a web client link https://...#otpauth://...); - reads it from stdin")
    .option("--name <name>", "the profile name (default: the URI's host)")
    .option("--addr <address>", "knock this address or name instead of the URI's (e.g. the server's public address)")
    .option("--qr <file>", "read the URI from a screenshot or photo (PNG or JPEG) of the enrolment QR code")
    .option("--index <n>", "the image holds several tknock QR codes: take the Nth (as listed)", parseIntOption("--index", 1, 64))
    .option("--time-offset <seconds>", "add this to the clock for every knock of this profile (a clock you cannot fix)", parseTimeOffset)
    .option("--force", "replace a profile of the same name")
    .action(async (uriArg: string | undefined, flags: AddFlags, self: Command) => {
      const profile = parseProfileUri(enrolmentUriOf(await uriFrom(ctx.io, uriArg, flags.qr, flags.index)));
      if (flags.addr !== undefined && !ADDR_RE.test(flags.addr)) {
        throw new TknockError("TKNOCK_USAGE", "--addr must be a host name or an IP address", ExitCode.usage);
      }
      const name = flags.name ?? profile.host.replace(/^\[(.*)\]$/, "$1");
      if (!isValidProfileName(name)) {
        throw new TknockError(
          "TKNOCK_BAD_NAME",
          `cannot name a profile ${JSON.stringify(name.slice(0, 40))}: give --name NAME (letters, digits, . _ : @ -)`,
          ExitCode.usage,
        );
      }
      const addr = flags.addr ?? profile.addr ?? profile.host;
      const store = ctx.openStore(self);
      // Store the canonical form of the URI; --addr travels with it so `export` hands the next device the same target.
      const uri = formatProfileUri(addr === (profile.addr ?? profile.host) ? profile : { ...profile, addr });
      const offset = flags.timeOffset ?? 0;
      await store.add(name, { uri, addr, ...(offset !== 0 ? { timeOffsetSeconds: offset } : {}) }, flags.force === true);
      ctx.io.out(`added ${name}: ${profile.proto} knocks to ${addr}, opens ${profile.open.join(",")}${offset !== 0 ? `, clock offset ${offset} s` : ""}`);
      if (SUBCOMMAND_NAMES.includes(name)) {
        ctx.io.err(`note: ${name} is also a command: knock it with \`tknock knock ${name}\``);
      }
    });
}
