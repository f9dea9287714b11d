import { ConfigError } from "../../src/errors.js";
import { decodeSecret, isValidClientName, type EnrolledProfile } from "../../src/protocol/profile-uri.js";
import { PROFILE_LIMITS, validateProfile } from "../../src/protocol/profile.js";
import { KNOCK_MODES } from "../../src/protocol/spa/mode.js";
import { commandTemplateProblem } from "../firewalls/command/command-template.js";
import { Checker } from "./check.js";
import { parseListenAddress } from "../metrics/listen-address.js";

/** The server's configuration (server.json). Every key has a default; unknown keys are errors. */
export type ServerConfig = {
  /** Interface to watch: a name or "any". */
  readonly interface: string;
  /**
   * "pcap": capture with tcpdump; "log": follow the firewall's log (logSource); "nflog": the gate logs the knock
   * range to NFLOG group nflogGroup, read with tcpdump -i nflog:N.
   */
  readonly listener: "pcap" | "log" | "nflog";
  /** Where the log listener reads: "journald", "kmsg" (/dev/kmsg) or "file:/abs/path" (followed like tail -F). */
  readonly logSource: "journald" | "kmsg" | `file:${string}`;
  /**
   * Log listener: the host already logs knock-range packets (ufw with logging on, an iptables LOG rule): the gate
   * adds no log rule of its own and every netfilter log line counts, whatever its prefix.
   */
  readonly logExisting: boolean;
  /** NFLOG group the gate logs knock-range packets to (listener nflog); no other program may bind it. */
  readonly nflogGroup: number;
  /**
   * Listener nflog: log only the ports that can matter now (the sequences of T-s..T+s plus random tripwires), so a
   * flood mostly stays in the kernel; turned off by itself when the tripwires would need more than a quarter of the
   * range (docs/design.md "Kernel prefilter").
   */
  readonly prefilter: boolean;
  /**
   * "nftables": tknock's own table; "iptables": its own chains and ipset sets; "command": run the open and close
   * commands of `command` (fail-open if the daemon dies during a grant); "none": log only, nothing is protected.
   */
  readonly firewall: "nftables" | "iptables" | "command" | "none";
  /**
   * Also gate forwarded traffic to protected ports by its original destination port (Docker's published ports,
   * any DNAT). "auto": on when Docker's chains are present at start. nftables and iptables only.
   */
  readonly gateForward: "auto" | boolean;
  /** Ports kept closed until a knock opens them for one source. */
  readonly protect: readonly number[];
  /** Path of the clients file (secrets; mode 0600). */
  readonly clientsFile: string;
  /** Directory for state.json (last accepted steps) and replays.jsonl. */
  readonly stateDir: string;
  /** Knock range given to new clients and watched by the capture filter. */
  readonly knockRange: { readonly min: number; readonly max: number };
  /**
   * Drop the knock range for everyone (a scan sees it "filtered"). Off: knocks still work (the capture sees
   * packets before netfilter), but a scan sees the range "closed".
   */
  readonly knockRangeDrop: boolean;
  readonly openSeconds: number;
  readonly skewWindows: number;
  readonly diagnosticWindows: number;
  readonly knockTimeoutMs: number;
  readonly retransmitMs: number;
  /**
   * Wrong knocks a source's sequence in progress survives between two of its ports, so spoofed knocks cannot
   * cheaply undo a client's; each one multiplies a blind guesser's odds (docs/protocol.md section 9).
   */
  readonly toleratedWrongKnocks: number;
  readonly maxSources: number;
  readonly bruteForce: {
    readonly maxFailuresPerMinute: number;
    /** Off by default: knock packets can be spoofed, so a ban lets an attacker lock a real user out. */
    readonly ban: boolean;
    readonly banSeconds: number;
  };
  readonly replayLog: { readonly maxBytes: number; readonly keepFiles: number };
  readonly nftables: { readonly table: string; readonly nftPath: string };
  /** Firewall iptables: its chains and ipset sets are named after `prefix` (tknock-in, tknock-g4, ...). */
  readonly iptables: { readonly prefix: string; readonly iptablesPath: string; readonly ip6tablesPath: string; readonly ipsetPath: string };
  /** Firewall command: argv templates (see server/firewalls/command/command-template.ts); undefined otherwise. */
  readonly command: CommandConfig | undefined;
  readonly tcpdump: {
    readonly path: string;
    readonly bufferKiB: number;
    /** Addresses the capture filter accepts as "this host"; empty = the host's own addresses, read at start. */
    readonly localAddresses: readonly string[];
  };
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /**
   * The Prometheus endpoint (GET /metrics); null: off. `listen` is "IP:PORT" ("[::1]:9477" for IPv6): a loopback
   * address unless the admin writes another, which is then reported at start (the counts show when knocks arrive).
   */
  readonly metrics: { readonly listen: string } | null;
};

export type CommandConfig = {
  readonly open: readonly string[];
  readonly close: readonly string[];
  /** What {proto} runs for: a command that names {proto} runs once per protocol listed. */
  readonly protos: readonly ("tcp" | "udp")[];
  /** A command still running after this is killed and counts as failed. */
  readonly timeoutMs: number;
};

export const DEFAULT_CONFIG_PATH = "/etc/tknock/server.json";
export const DEFAULT_STATE_DIR = "/var/lib/tknock";

export function defaultServerConfig(paths: { clientsFile: string; stateDir?: string }): ServerConfig {
  return {
    interface: "any",
    listener: "pcap",
    logSource: "journald",
    logExisting: false,
    nflogGroup: 5,
    prefilter: true,
    firewall: "nftables",
    gateForward: "auto",
    protect: [22],
    clientsFile: paths.clientsFile,
    stateDir: paths.stateDir ?? DEFAULT_STATE_DIR,
    knockRange: { min: PROFILE_LIMITS.portMin, max: PROFILE_LIMITS.portMax },
    knockRangeDrop: true,
    openSeconds: 30,
    skewWindows: 1,
    diagnosticWindows: 10,
    knockTimeoutMs: 5000,
    retransmitMs: 3000,
    toleratedWrongKnocks: 4,
    maxSources: 100_000,
    bruteForce: { maxFailuresPerMinute: 10, ban: false, banSeconds: 600 },
    replayLog: { maxBytes: 10 * 1024 * 1024, keepFiles: 3 },
    nftables: { table: "tknock", nftPath: "nft" },
    iptables: { prefix: "tknock", iptablesPath: "iptables", ip6tablesPath: "ip6tables", ipsetPath: "ipset" },
    command: undefined,
    tcpdump: { path: "tcpdump", bufferKiB: 16384, localAddresses: [] },
    logLevel: "info",
    metrics: null,
  };
}

const ABS_PATH = { pattern: /^\//, hint: "use an absolute path" };

/** Validates a parsed server.json; throws ConfigError listing every problem at once. */
export function parseServerConfig(raw: unknown, source: string): ServerConfig {
  const c = new Checker();
  const d = defaultServerConfig({ clientsFile: "" });
  const o =
    c.object(raw, "config", [
      "interface",
      "listener",
      "logSource",
      "logExisting",
      "nflogGroup",
      "prefilter",
      "firewall",
      "gateForward",
      "protect",
      "clientsFile",
      "stateDir",
      "knockRange",
      "knockRangeDrop",
      "openSeconds",
      "skewWindows",
      "diagnosticWindows",
      "knockTimeoutMs",
      "retransmitMs",
      "toleratedWrongKnocks",
      "maxSources",
      "bruteForce",
      "replayLog",
      "nftables",
      "iptables",
      "command",
      "tcpdump",
      "logLevel",
      "metrics",
    ]) ?? {};
  const get = <T>(key: string, fallback: T, check: (v: unknown, path: string) => T): T => (o[key] === undefined ? fallback : check(o[key], key));
  const sub = (key: string, keys: readonly string[]): Record<string, unknown> => (o[key] === undefined ? {} : (c.object(o[key], key, keys) ?? {}));

  const kr = sub("knockRange", ["min", "max"]);
  const bf = sub("bruteForce", ["maxFailuresPerMinute", "ban", "banSeconds"]);
  const rl = sub("replayLog", ["maxBytes", "keepFiles"]);
  const nf = sub("nftables", ["table", "nftPath"]);
  const ip = sub("iptables", ["prefix", "iptablesPath", "ip6tablesPath", "ipsetPath"]);
  const td = sub("tcpdump", ["path", "bufferKiB", "localAddresses"]);
  const or = <T>(v: unknown, fallback: T, check: (v: unknown) => T): T => (v === undefined ? fallback : check(v));

  if (o["clientsFile"] === undefined) c.problem("clientsFile", "is missing: name the clients file (absolute path)");
  const config: ServerConfig = {
    interface: get("interface", d.interface, (v, p) => c.string(v, p, { pattern: /^[A-Za-z0-9_.:@-]{1,15}$/, hint: 'use an interface name or "any"' })),
    listener: get("listener", d.listener, (v, p) => c.oneOf(v, p, ["pcap", "log", "nflog"] as const)),
    logSource: get(
      "logSource",
      d.logSource,
      (v, p) =>
        c.string(v, p, { pattern: /^(journald|kmsg|file:\/[^\0]+)$/, hint: 'use "journald", "kmsg" or "file:/absolute/path"' }) as ServerConfig["logSource"],
    ),
    logExisting: get("logExisting", d.logExisting, (v, p) => c.bool(v, p)),
    nflogGroup: get("nflogGroup", d.nflogGroup, (v, p) => c.int(v, p, 0, 65535)),
    prefilter: get("prefilter", d.prefilter, (v, p) => c.bool(v, p)),
    firewall: get("firewall", d.firewall, (v, p) => c.oneOf(v, p, ["nftables", "iptables", "command", "none"] as const)),
    gateForward: get("gateForward", d.gateForward, (v, p) => (v === "auto" ? "auto" : c.bool(v, p))),
    protect: get("protect", d.protect, (v, p) => c.ports(v, p, { allowEmpty: false })),
    clientsFile: get("clientsFile", d.clientsFile, (v, p) => c.string(v, p, ABS_PATH)),
    stateDir: get("stateDir", d.stateDir, (v, p) => c.string(v, p, ABS_PATH)),
    knockRange: {
      min: or(kr["min"], d.knockRange.min, (v) => c.int(v, "knockRange.min", 1, 65535)),
      max: or(kr["max"], d.knockRange.max, (v) => c.int(v, "knockRange.max", 1, 65535)),
    },
    knockRangeDrop: get("knockRangeDrop", d.knockRangeDrop, (v, p) => c.bool(v, p)),
    openSeconds: get("openSeconds", d.openSeconds, (v, p) => c.int(v, p, 1, 86_400)),
    skewWindows: get("skewWindows", d.skewWindows, (v, p) => c.int(v, p, 0, 5)),
    diagnosticWindows: get("diagnosticWindows", d.diagnosticWindows, (v, p) => c.int(v, p, 0, 1000)),
    knockTimeoutMs: get("knockTimeoutMs", d.knockTimeoutMs, (v, p) => c.int(v, p, 100, 60_000)),
    retransmitMs: get("retransmitMs", d.retransmitMs, (v, p) => c.int(v, p, 0, 60_000)),
    toleratedWrongKnocks: get("toleratedWrongKnocks", d.toleratedWrongKnocks, (v, p) => c.int(v, p, 0, 16)),
    maxSources: get("maxSources", d.maxSources, (v, p) => c.int(v, p, 100, 10_000_000)),
    bruteForce: {
      maxFailuresPerMinute: or(bf["maxFailuresPerMinute"], d.bruteForce.maxFailuresPerMinute, (v) => c.int(v, "bruteForce.maxFailuresPerMinute", 1, 1_000_000)),
      ban: or(bf["ban"], d.bruteForce.ban, (v) => c.bool(v, "bruteForce.ban")),
      banSeconds: or(bf["banSeconds"], d.bruteForce.banSeconds, (v) => c.int(v, "bruteForce.banSeconds", 1, 86_400 * 7)),
    },
    replayLog: {
      maxBytes: or(rl["maxBytes"], d.replayLog.maxBytes, (v) => c.int(v, "replayLog.maxBytes", 4096, 1024 ** 3)),
      keepFiles: or(rl["keepFiles"], d.replayLog.keepFiles, (v) => c.int(v, "replayLog.keepFiles", 1, 100)),
    },
    nftables: {
      table: or(nf["table"], d.nftables.table, (v) =>
        c.string(v, "nftables.table", { pattern: /^[A-Za-z][A-Za-z0-9_]{0,31}$/, hint: "use letters, digits and _ (up to 32)" }),
      ),
      nftPath: or(nf["nftPath"], d.nftables.nftPath, (v) => c.string(v, "nftables.nftPath")),
    },
    iptables: {
      prefix: or(ip["prefix"], d.iptables.prefix, (v) =>
        c.string(v, "iptables.prefix", { pattern: /^[a-z][a-z0-9_]{0,15}$/, hint: "use lowercase letters, digits and _ (up to 16)" }),
      ),
      iptablesPath: or(ip["iptablesPath"], d.iptables.iptablesPath, (v) => c.string(v, "iptables.iptablesPath")),
      ip6tablesPath: or(ip["ip6tablesPath"], d.iptables.ip6tablesPath, (v) => c.string(v, "iptables.ip6tablesPath")),
      ipsetPath: or(ip["ipsetPath"], d.iptables.ipsetPath, (v) => c.string(v, "iptables.ipsetPath")),
    },
    command: o["command"] === undefined ? undefined : parseCommandConfig(c, o["command"]),
    tcpdump: {
      path: or(td["path"], d.tcpdump.path, (v) => c.string(v, "tcpdump.path")),
      bufferKiB: or(td["bufferKiB"], d.tcpdump.bufferKiB, (v) => c.int(v, "tcpdump.bufferKiB", 64, 1_048_576)),
      localAddresses: or(td["localAddresses"], d.tcpdump.localAddresses, (v) => c.stringList(v, "tcpdump.localAddresses")),
    },
    logLevel: get("logLevel", d.logLevel, (v, p) => c.oneOf(v, p, ["debug", "info", "warn", "error"] as const)),
    metrics: o["metrics"] === null || o["metrics"] === undefined ? d.metrics : parseMetrics(c, sub("metrics", ["listen"])),
  };
  if (config.knockRange.min > config.knockRange.max) c.problem("knockRange", `min ${config.knockRange.min} is above max ${config.knockRange.max}`);
  for (const p of config.protect) {
    if (p >= config.knockRange.min && p <= config.knockRange.max) {
      c.problem("protect", `port ${p} lies inside the knock range ${config.knockRange.min}-${config.knockRange.max}: move it or the range`);
    }
  }
  if (config.firewall === "command" && config.command === undefined) {
    c.problem("command", 'is missing: firewall "command" needs {"open": [...], "close": [...]} (see README)');
  }
  if (c.issues.length > 0) throw new ConfigError(c.issues, source);
  return config;
}

function parseCommandConfig(c: Checker, raw: unknown): CommandConfig {
  const o = c.object(raw, "command", ["open", "close", "protos", "timeoutMs"]) ?? {};
  const template = (key: "open" | "close"): string[] => {
    const problem = commandTemplateProblem(o[key]);
    if (problem !== undefined) c.problem(`command.${key}`, problem);
    return problem === undefined ? [...(o[key] as string[])] : [];
  };
  const protos = o["protos"] === undefined ? ["tcp", "udp"] : o["protos"];
  if (!Array.isArray(protos) || protos.length === 0) c.problem("command.protos", 'use a non-empty list of "tcp" and "udp"');
  return {
    open: template("open"),
    close: template("close"),
    protos: Array.isArray(protos) ? [...new Set(protos.map((p, i) => c.oneOf(p, `command.protos[${i}]`, ["tcp", "udp"] as const)))] : [],
    timeoutMs: o["timeoutMs"] === undefined ? 10_000 : c.int(o["timeoutMs"], "command.timeoutMs", 100, 600_000),
  };
}

function parseMetrics(c: Checker, m: Record<string, unknown>): ServerConfig["metrics"] {
  const listen = c.string(m["listen"], "metrics.listen", { hint: 'use "IP:PORT", e.g. "127.0.0.1:9477" or "[::1]:9477"' });
  if (listen !== "" && parseListenAddress(listen) === undefined)
    c.problem("metrics.listen", `${JSON.stringify(listen)} is not allowed: use "IP:PORT", e.g. "127.0.0.1:9477" or "[::1]:9477"`);
  return { listen };
}

/**
 * One enrolled client as the clients file stores it: the enrolled profile, keyed by the client's name instead of
 * holding it, with the secret in base32 and the time of enrolment.
 */
export type ClientRecord = Omit<EnrolledProfile, "client" | "secret"> & {
  readonly secret: string;
  readonly enrolledAt: string;
  /** SPA: the client may ask (`tknock --nat`) to open the packet's source address instead of the one it names. */
  readonly allowNat?: boolean;
  /** This client's grants last this long instead of the config's openSeconds (`enroll --open-seconds`). */
  readonly openSeconds?: number;
};

export type ClientsFile = { readonly version: 1; readonly clients: Readonly<Record<string, ClientRecord>> };

export function emptyClientsFile(): ClientsFile {
  return { version: 1, clients: {} };
}

const CLIENT_KEYS = [
  "secret",
  "periodSeconds",
  "knocks",
  "portMin",
  "portMax",
  "exclude",
  "proto",
  "open",
  "host",
  "addr",
  "enrolledAt",
  "mode",
  "allowNat",
  "openSeconds",
] as const;

/** Validates a parsed clients file; each client's profile must obey protocol v1. Secrets are never quoted. */
export function parseClientsFile(raw: unknown, source: string): ClientsFile {
  const c = new Checker();
  const o = c.object(raw, "clients file", ["version", "clients"]) ?? {};
  if (o["version"] !== 1) c.problem("version", "must be 1");
  const clients: Record<string, ClientRecord> = {};
  const list = c.object(o["clients"] ?? {}, "clients", Object.keys((o["clients"] as object | undefined) ?? {})) ?? {};
  for (const [index, [name, value]] of Object.entries(list).entries()) {
    // A name that breaks the rules may be anything, a pasted secret included: point at it by position instead.
    const path = isValidClientName(name) ? `clients.${name}` : `clients (entry ${index + 1})`;
    if (!isValidClientName(name)) c.problem(path, "client name must be letters, digits, . _ - (up to 63)");
    const r = c.object(value, path, CLIENT_KEYS);
    if (!r) continue;
    const before = c.issues.length;
    const record: ClientRecord = {
      secret: c.string(r["secret"], `${path}.secret`, { pattern: /^[A-Z2-7]+=*$/, hint: "use base32 (A-Z, 2-7)", secret: true }),
      periodSeconds: c.int(r["periodSeconds"], `${path}.periodSeconds`, PROFILE_LIMITS.periodSeconds.min, PROFILE_LIMITS.periodSeconds.max),
      knocks: c.int(r["knocks"], `${path}.knocks`, PROFILE_LIMITS.knocks.min, PROFILE_LIMITS.knocks.max),
      portMin: c.int(r["portMin"], `${path}.portMin`, 1, 65535),
      portMax: c.int(r["portMax"], `${path}.portMax`, 1, 65535),
      exclude: c.ports(r["exclude"], `${path}.exclude`, { allowEmpty: true }),
      proto: c.oneOf(r["proto"], `${path}.proto`, ["tcp", "udp"] as const),
      open: c.ports(r["open"], `${path}.open`, { allowEmpty: false }),
      host: c.string(r["host"], `${path}.host`),
      ...(r["addr"] !== undefined ? { addr: c.string(r["addr"], `${path}.addr`) } : {}),
      enrolledAt: c.string(r["enrolledAt"], `${path}.enrolledAt`),
      ...(r["mode"] !== undefined ? { mode: c.oneOf(r["mode"], `${path}.mode`, KNOCK_MODES) } : {}),
      ...(r["allowNat"] !== undefined ? { allowNat: c.bool(r["allowNat"], `${path}.allowNat`) } : {}),
      ...(r["openSeconds"] !== undefined ? { openSeconds: c.int(r["openSeconds"], `${path}.openSeconds`, 1, 86_400) } : {}),
    };
    if (c.issues.length === before) {
      try {
        validateProfile(clientProfile(name, record));
      } catch (err) {
        c.problem(path, err instanceof Error ? err.message : String(err));
        continue;
      }
    }
    clients[name] = record;
  }
  if (c.issues.length > 0) throw new ConfigError(c.issues, source);
  return { version: 1, clients };
}

/** The protocol view of a stored client. */
export function clientProfile(name: string, r: ClientRecord): EnrolledProfile {
  return {
    client: name,
    host: r.host,
    ...(r.addr !== undefined ? { addr: r.addr } : {}),
    ...(r.mode !== undefined && r.mode !== "sequence" ? { mode: r.mode } : {}),
    open: r.open,
    secret: decodeSecret(r.secret),
    periodSeconds: r.periodSeconds,
    knocks: r.knocks,
    portMin: r.portMin,
    portMax: r.portMax,
    exclude: r.exclude,
    proto: r.proto,
  };
}
