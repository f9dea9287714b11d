import type { Command } from "commander";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { CliIo } from "../../src/cli-io.js";
import { writeFileAtomic } from "../config/load.js";
import { defaultServerConfig, DEFAULT_STATE_DIR, emptyClientsFile, parseServerConfig } from "../config/schema.js";
import { ExitCode, TknockError } from "../../src/errors.js";
import { fsError, withPermissionFix } from "../../src/fs-errors.js";
import { checkCanCreateDir, checkCanWriteFile } from "../fs-preflight.js";
import { isPort } from "../../src/port-number.js";
import { clientsWriteTarget, withClientsLock, writeClients } from "../clients-file.js";
import { checkInterface } from "../preflight.js";
import { StepStore } from "../state.js";
import { configPathOf } from "./context.js";
import { parseKnockRangeArg } from "./knock-range-arg.js";

type InitOptions = {
  interface?: string;
  protect?: string[];
  stateDir?: string;
  clients?: string;
  force?: boolean;
  knockRange?: string;
  knockRangeDrop?: boolean;
  listener?: string;
  logSource?: string;
  logExisting?: boolean;
  nflogGroup?: string;
  firewall?: string;
  openCommand?: string;
  closeCommand?: string;
};

export function parsePortArgs(values: readonly string[] | undefined, option: string): number[] | undefined {
  if (values === undefined) return undefined;
  const ports = values
    .flatMap((v) => v.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const parsed = ports.map(Number);
  const bad = ports.find((s, i) => !/^\d+$/.test(s) || !isPort(parsed[i]));
  if (bad !== undefined || parsed.length === 0) {
    throw new TknockError("TKNOCK_USAGE", `${option} takes port numbers (1..65535), got ${JSON.stringify(bad ?? "")}`, ExitCode.usage);
  }
  return [...new Set(parsed)];
}

/** --open-command/--close-command as the config's command section; the schema then checks them. */
function commandSection(opts: InitOptions): { command?: { open: unknown; close: unknown } } {
  if (opts.openCommand === undefined && opts.closeCommand === undefined) return {};
  const parse = (text: string | undefined, option: string): unknown => {
    if (text === undefined) throw new TknockError("TKNOCK_USAGE", `${option} is missing: give both --open-command and --close-command`, ExitCode.usage);
    try {
      return JSON.parse(text);
    } catch {
      throw new TknockError("TKNOCK_USAGE", `${option} takes a JSON list of strings, e.g. '["/usr/local/bin/open-port","{ip}","{port}"]'`, ExitCode.usage);
    }
  };
  return { command: { open: parse(opts.openCommand, "--open-command"), close: parse(opts.closeCommand, "--close-command") } };
}

export function registerInit(program: Command, io: CliIo): void {
  program
    .command("init")
    .description("write a default config, an empty clients file and the state directory")
    .option("--interface <if>", 'interface to watch, or "any"', "any")
    .option("--protect <port...>", "ports to keep closed until a knock (default 22)")
    .option("--knock-range <min-max>", "ports clients knock, e.g. 20000-29999 (default 10000-59999); keep your services out of it")
    .option("--no-knock-range-drop", "do not drop the knock range: a scan sees it closed instead of filtered (see README)")
    .option(
      "--listener <pcap|log|nflog>",
      "pcap: capture with tcpdump; log: follow the firewall's log; nflog: read the gate's NFLOG group (see README)",
      "pcap",
    )
    .option("--log-source <journald|kmsg|file:PATH>", "listener log: where to read the kernel's log (default journald)")
    .option("--log-existing", "listener log: the host already logs knock-range packets (ufw logging on): add no log rule")
    .option("--nflog-group <n>", "listener nflog: the NFLOG group the gate logs knocks to, 0..65535 (default 5)")
    .option(
      "--firewall <nftables|iptables|command|none>",
      "how ports are opened: nftables, iptables with ipset, your own commands, or none (log only)",
      "nftables",
    )
    .option("--open-command <json>", 'firewall command: the open command as a JSON list, e.g. \'["/usr/local/bin/open-port","{ip}","{port}"]\'')
    .option("--close-command <json>", "firewall command: the close command as a JSON list (placeholders {ip} {port} {proto} {timeout} {client})")
    .option("--state-dir <dir>", `state directory (default ${DEFAULT_STATE_DIR})`)
    .option("--clients <file>", "clients file (default: clients.json next to the config)")
    .option("--force", "overwrite an existing config and clients file")
    .action(async (opts: InitOptions, cmd: Command) => {
      const configPath = resolve(configPathOf(cmd));
      const clientsFile = resolve(opts.clients ?? join(dirname(configPath), "clients.json"));
      const stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
      const statePath = join(stateDir, "state.json");
      const force = opts.force === true;
      for (const path of [configPath, clientsFile]) {
        if (existsSync(path) && !force) {
          throw new TknockError("TKNOCK_EXISTS", `${path} already exists: keep it, or pass --force to overwrite it`, ExitCode.usage);
        }
      }
      const base = defaultServerConfig({ clientsFile, stateDir });
      const config = {
        ...base,
        interface: opts.interface ?? base.interface,
        protect: parsePortArgs(opts.protect, "--protect") ?? base.protect,
        knockRange: opts.knockRange === undefined ? base.knockRange : parseKnockRangeArg(opts.knockRange),
        knockRangeDrop: opts.knockRangeDrop ?? base.knockRangeDrop,
        listener: opts.listener ?? base.listener,
        logSource: opts.logSource ?? base.logSource,
        logExisting: opts.logExisting ?? base.logExisting,
        // A non-number goes to parseServerConfig as it is, which names the key and the allowed range.
        nflogGroup: opts.nflogGroup === undefined ? base.nflogGroup : /^\d+$/.test(opts.nflogGroup) ? Number(opts.nflogGroup) : opts.nflogGroup,
        firewall: opts.firewall ?? base.firewall,
        ...commandSection(opts),
      };
      parseServerConfig(config, configPath); // the written file must load
      checkInterface(config.interface, { fix: "pass --interface with one of this host's interfaces" });
      // Everything init will write is checked before the first write: a refusal leaves nothing behind.
      const clientsTarget = clientsWriteTarget(clientsFile);
      checkCanWriteFile(configPath, "config file", { inPlace: false });
      checkCanWriteFile(clientsTarget, "clients file", { inPlace: false });
      checkCanCreateDir(stateDir, "state directory");
      try {
        mkdirSync(dirname(configPath), { recursive: true, mode: 0o755 });
        mkdirSync(dirname(clientsTarget), { recursive: true, mode: 0o700 });
        mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      } catch (cause) {
        throw fsError(cause, "create", `the directories of ${configPath}, ${clientsTarget} and ${stateDir}`);
      }
      await withClientsLock(clientsFile, () => {
        if (existsSync(clientsFile) && !force) {
          throw new TknockError(
            "TKNOCK_EXISTS",
            `${clientsFile} already exists (another init just wrote it): keep it, or pass --force to overwrite it`,
            ExitCode.usage,
          );
        }
        try {
          writeFileAtomic(configPath, `${JSON.stringify(config, null, 2)}\n`, 0o644);
        } catch (cause) {
          throw fsError(cause, "write", `config file ${configPath}`);
        }
        writeClients(clientsFile, emptyClientsFile());
      });
      try {
        if (!existsSync(statePath) || force) StepStore.createEmpty(statePath);
      } catch (err) {
        throw withPermissionFix(err, "write", `state file ${statePath}`);
      }
      io.out(`wrote ${configPath}\nwrote ${clientsFile} (mode 600)\nstate in ${stateDir}`);
      io.out(`next: tknock-server --config ${configPath} enroll NAME`);
    });
}
