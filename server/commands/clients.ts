import { Option, type Command } from "commander";
import { hostname } from "node:os";
import { writeFile } from "node:fs/promises";
import QRCode from "qrcode";
import type { CliIo } from "../../src/cli-io.js";
import { formatTable, parseIntOption } from "../../src/cli-io.js";
import { clientProfile, type ClientRecord } from "../config/schema.js";
import { ExitCode, TknockError } from "../../src/errors.js";
import { fsError } from "../../src/fs-errors.js";
import { checkCanWriteFile } from "../fs-preflight.js";
import { formatSequence } from "../../src/protocol/sequence-text.js";
import { formatProfileUri, isValidClientName, newSecretBase32, parseProfileUri } from "../../src/protocol/profile-uri.js";
import { PROFILE_LIMITS, validateProfile } from "../../src/protocol/profile.js";
import { badPortsIn } from "../../src/protocol/bad-ports.js";
import { checkWebUrl, formatWebLink } from "../../src/protocol/web-link.js";
import { readClients, withClientsLock, writeClients } from "../clients-file.js";
import { enrollExclusions } from "../service-exemptions.js";
import { KNOCK_MODES, type KnockMode } from "../../src/protocol/spa/mode.js";
import { loadConfigOf } from "./context.js";
import { parsePortArgs } from "./init.js";

type EnrollOptions = {
  host?: string;
  addr?: string;
  open?: string[];
  qrPng?: string;
  force?: boolean;
  period?: number;
  knocks?: number;
  proto?: "tcp" | "udp";
  mode?: KnockMode;
  allowNat?: boolean;
  openSeconds?: number;
  webUrl?: string;
};

export function registerClientCommands(program: Command, io: CliIo): void {
  program
    .command("enroll")
    .description("create a client with a fresh secret; prints its otpauth URI and QR code")
    .argument("<client>", "client name (letters, digits, . _ -)")
    .option("--host <name>", "host name put in the URI (default: this machine's name)")
    .option("--addr <address>", "address clients knock, when it differs from --host")
    .option("--open <port...>", "protected port(s) this client may open (default: all protected ports)")
    .option("--qr-png <file>", "also write the QR code as a PNG (it holds the secret: keep it private)")
    .option(
      "--period <seconds>",
      "window length",
      parseIntOption("--period", PROFILE_LIMITS.periodSeconds.min, PROFILE_LIMITS.periodSeconds.max),
      PROFILE_LIMITS.periodSeconds.default,
    )
    .option(
      "--knocks <n>",
      "ports per sequence",
      parseIntOption("--knocks", PROFILE_LIMITS.knocks.min, PROFILE_LIMITS.knocks.max),
      PROFILE_LIMITS.knocks.default,
    )
    .addOption(new Option("--proto <proto>", "knock protocol").choices(["tcp", "udp"]).default("tcp"))
    .addOption(
      new Option("--mode <mode>", "how the client knocks: sequence (knocks), spa (one encrypted packet to a rotating port) or both")
        .choices(KNOCK_MODES)
        .default("sequence"),
    )
    .option("--allow-nat", "SPA: let the client ask (tknock --nat) to open the address its packet arrives from")
    .option(
      "--open-seconds <n>",
      "how long this client's knock opens the port, overriding the config's openSeconds (stored in the clients file)",
      parseIntOption("--open-seconds", 1, 86_400),
    )
    .option("--web-url <url>", "where the web client is hosted (https://...): the QR code holds URL#URI, which a phone's camera opens in that page")
    .option("--force", "replace an existing client of that name (new secret)")
    .action(async (name: string, opts: EnrollOptions, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      if (!isValidClientName(name)) {
        throw new TknockError("TKNOCK_USAGE", `client name ${JSON.stringify(name)} is not allowed: use letters, digits, . _ - (up to 63)`, ExitCode.usage);
      }
      const open = parsePortArgs(opts.open, "--open") ?? [...config.protect];
      const notProtected = open.filter((p) => !config.protect.includes(p));
      if (notProtected.length > 0) {
        throw new TknockError(
          "TKNOCK_USAGE",
          `--open ${notProtected.join(",")} is not a protected port (protect: ${config.protect.join(",")}): add it to "protect" in the config first`,
          ExitCode.usage,
        );
      }
      if (opts.webUrl !== undefined) checkWebUrl(opts.webUrl);
      if (opts.qrPng !== undefined) checkCanWriteFile(opts.qrPng, "QR code file", { inPlace: true });
      const exclusions = await enrollExclusions(config);
      const uri = await withClientsLock(config.clientsFile, async () => {
        const file = readClients(config.clientsFile);
        if (file.clients[name] !== undefined && opts.force !== true) {
          throw new TknockError("TKNOCK_EXISTS", `client ${name} already exists: revoke it first, or pass --force to give it a new secret`, ExitCode.usage);
        }
        const record: ClientRecord = {
          secret: await newSecretBase32(PROFILE_LIMITS.defaultSecretBytes),
          periodSeconds: opts.period ?? PROFILE_LIMITS.periodSeconds.default,
          knocks: opts.knocks ?? PROFILE_LIMITS.knocks.default,
          portMin: config.knockRange.min,
          portMax: config.knockRange.max,
          // Browsers refuse the Fetch "bad ports" (10080 in the default range): left out, every profile can knock from the web client.
          exclude: [...new Set([...exclusions.exclude, ...badPortsIn(config.knockRange.min, config.knockRange.max)])],
          proto: opts.proto ?? "tcp",
          open,
          host: opts.host ?? hostname(),
          ...(opts.addr !== undefined ? { addr: opts.addr } : {}),
          enrolledAt: new Date(io.clock.nowMs()).toISOString(),
          ...(opts.mode !== undefined && opts.mode !== "sequence" ? { mode: opts.mode } : {}),
          ...(opts.allowNat === true ? { allowNat: true } : {}),
          ...(opts.openSeconds !== undefined ? { openSeconds: opts.openSeconds } : {}),
        };
        const profile = validateProfile(clientProfile(name, record));
        const enrolledUri = formatProfileUri({
          ...profile,
          open,
          host: record.host,
          client: name,
          ...(record.mode !== undefined ? { mode: record.mode } : {}),
        });
        parseProfileUri(enrolledUri); // what we hand out must read back
        writeClients(config.clientsFile, { version: 1, clients: { ...file.clients, [name]: record } });
        return enrolledUri;
      });
      // With --web-url the QR code holds the link (a phone's camera opens the page, which imports the fragment).
      const qrText = opts.webUrl !== undefined ? formatWebLink(opts.webUrl, uri) : uri;
      io.out(await QRCode.toString(qrText, { type: "terminal", small: true }));
      io.out(uri);
      if (opts.webUrl !== undefined) io.out(qrText);
      for (const note of exclusions.notes) io.err(note);
      const how =
        opts.webUrl !== undefined
          ? "scan the QR code with the phone's camera (it opens the web client, which imports the profile), or on a computer run `tknock add 'URI'`"
          : "on the client run `tknock add 'URI'` or scan the QR code";
      io.err(`enrolled ${name}: ${how}. The URI holds the secret: send it privately.`);
      if (opts.qrPng !== undefined) {
        const png = await QRCode.toBuffer(qrText, { type: "png", margin: 2, scale: 6 });
        await writeFile(opts.qrPng, png, { mode: 0o600 }).catch((cause: unknown) => {
          throw fsError(cause, "write", `QR code file ${opts.qrPng}`);
        });
        io.err(`wrote ${opts.qrPng} (mode 600)`);
      }
    });

  program
    .command("revoke")
    .description("remove a client; its knocks stop working at once in a running daemon")
    .argument("<client>", "client name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      await withClientsLock(config.clientsFile, () => {
        const file = readClients(config.clientsFile);
        if (file.clients[name] === undefined) {
          throw new TknockError("TKNOCK_NO_CLIENT", `no client named ${name} (see \`tknock-server list\`)`, ExitCode.usage);
        }
        const { [name]: _removed, ...rest } = file.clients;
        writeClients(config.clientsFile, { version: 1, clients: rest });
      });
      io.out(`revoked ${name}`);
    });

  program
    .command("list")
    .description("list enrolled clients (never shows secrets)")
    .option("--json", "machine-readable output")
    .action((opts: { json?: boolean }, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      const file = readClients(config.clientsFile);
      const rows = Object.entries(file.clients).map(([name, r]) => ({
        name,
        host: r.host,
        ...(r.addr !== undefined ? { addr: r.addr } : {}),
        open: r.open,
        proto: r.proto,
        mode: r.mode ?? "sequence",
        knocks: r.knocks,
        periodSeconds: r.periodSeconds,
        ports: `${r.portMin}-${r.portMax}`,
        enrolledAt: r.enrolledAt,
      }));
      if (opts.json === true) {
        io.out(JSON.stringify(rows));
        return;
      }
      if (rows.length === 0) {
        io.out("no clients: enrol one with `tknock-server enroll NAME`");
        return;
      }
      io.out(
        formatTable([
          ["NAME", "HOST", "ADDR", "OPEN", "PROTO", "MODE", "KNOCKS", "PERIOD", "PORTS", "ENROLLED"],
          ...rows.map((r) => [
            r.name,
            r.host,
            r.addr ?? "-",
            r.open.join(","),
            r.proto,
            r.mode,
            String(r.knocks),
            `${r.periodSeconds}s`,
            r.ports,
            r.enrolledAt,
          ]),
        ]),
      );
    });

  program
    .command("sequence")
    .description("print a client's knock sequence now or at a given time (debugging)")
    .argument("<client>", "client name")
    .option("--at <unixSeconds>", "the time, in Unix seconds (default: now)", parseIntOption("--at", 0, 2 ** 40))
    .option("--json", 'print {"step":N,"ports":[...],"proto":"tcp"}')
    .action((name: string, opts: { at?: number; json?: boolean }, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      const record = readClients(config.clientsFile).clients[name];
      if (record === undefined) throw new TknockError("TKNOCK_NO_CLIENT", `no client named ${name} (see \`tknock-server list\`)`, ExitCode.usage);
      io.out(formatSequence(clientProfile(name, record), opts.at === undefined ? io.clock.nowMs() : opts.at * 1000, opts.json === true));
    });
}
