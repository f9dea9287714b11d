/**
 * What `tknock-server run` checks before it touches anything (no gate installed, no state rewritten): the rights
 * it needs, a writable state directory, the interface, and what the chosen listener and firewall need to run.
 * A failure is one TknockError whose message names the fix; the daemon exits 1 with it. Without these checks a
 * daemon missing tcpdump installed the gate and then retried tcpdump forever: the service shut for good while
 * systemd reported it active.
 */
import { execFile } from "node:child_process";
import { accessSync, closeSync, constants, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { ServerConfig } from "./config/schema.js";
import { ExitCode, TknockError, type TknockCode } from "../src/errors.js";
import { runNftOnce } from "./firewalls/nftables/nft-process.js";
import { checkTcpdump } from "./listeners/pcap/listener.js";
import { checkLogSource } from "./listeners/log/check-source.js";

/** Linux capability numbers (include/uapi/linux/capability.h). */
export const CAP = { setgid: 6, setuid: 7, netAdmin: 12, netRaw: 13 } as const;

export type PreflightOptions = {
  /** Where the process's capabilities are read (CapEff). Default /proc/self/status. */
  readonly procStatusPath?: string;
  /** Where interfaces are listed. Default /sys/class/net (`ip netns exec` mounts the namespace's own). */
  readonly sysClassNet?: string;
  /** How long tcpdump, journalctl or nft may take to answer. Default 1500 ms, so a failing start ends within 2 s. */
  readonly commandTimeoutMs?: number;
  readonly uid?: number;
  /** Listener log with logSource journald: the journalctl to check (default from PATH); kmsg: the device (default /dev/kmsg). */
  readonly journalctlPath?: string;
  readonly kmsgPath?: string;
};

export type PreflightResult = {
  /** Things that may work but deserve a line in the log. */
  readonly warnings: readonly string[];
};

/**
 * Runs every check; rejects with the first failure in a fixed order (rights first: without them every other
 * check fails for the same reason). The command checks run in parallel to keep a failing start fast.
 */
export async function preflightRun(config: ServerConfig, options: PreflightOptions = {}): Promise<PreflightResult> {
  const timeoutMs = options.commandTimeoutMs ?? 1500;
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const warnings: string[] = [];
  const outcomes = await Promise.allSettled([
    Promise.resolve().then(() => {
      const caps = readEffectiveCapabilities(options.procStatusPath);
      const captures = config.listener === "pcap";
      checkCapabilities(caps, uid, captures);
      // nflog binds a netlink group (CAP_NET_ADMIN, checked above) but still runs tcpdump, which drops to its user.
      const warning = captures || config.listener === "nflog" ? setuidWarning(caps, uid) : undefined;
      if (warning !== undefined) warnings.push(warning);
    }),
    Promise.resolve().then(() => checkStateDirWritable(config.stateDir)),
    // nflog reads nflog:N, which is no interface in /sys/class/net: `interface` is not used then.
    Promise.resolve().then(() => (config.listener === "nflog" ? undefined : checkInterface(config.interface, { sysClassNet: options.sysClassNet }))),
    checkListenerNeeds(config, timeoutMs, options),
    checkFirewallNeeds(config, timeoutMs),
  ]);
  for (const o of outcomes) if (o.status === "rejected") throw o.reason;
  return { warnings };
}

/** The effective capability mask, or undefined when /proc cannot tell (then the uid decides). */
export function readEffectiveCapabilities(procStatusPath = "/proc/self/status"): bigint | undefined {
  try {
    return parseCapEff(readFileSync(procStatusPath, "utf8"));
  } catch {
    return undefined;
  }
}

export function parseCapEff(procStatus: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(procStatus);
  return m?.[1] === undefined ? undefined : BigInt(`0x${m[1]}`);
}

export function hasCapability(mask: bigint, cap: number): boolean {
  return ((mask >> BigInt(cap)) & 1n) === 1n;
}

/**
 * nftables needs CAP_NET_ADMIN, packet capture (the pcap listener) CAP_NET_RAW; root normally has both (not in
 * every container). The log listener reads what the kernel already logged and captures nothing.
 */
export function checkCapabilities(effective: bigint | undefined, uid: number, captures = true): void {
  const ok = effective === undefined ? uid === 0 : hasCapability(effective, CAP.netAdmin) && (!captures || hasCapability(effective, CAP.netRaw));
  if (!ok) {
    const needs = captures ? "CAP_NET_ADMIN and CAP_NET_RAW (nftables and packet capture)" : "CAP_NET_ADMIN (nftables)";
    throw new TknockError("TKNOCK_PERMISSION", `tknock-server run needs ${needs}: run as root or with sudo`, ExitCode.usage);
  }
}

/** tcpdump started as root drops to its own user (Debian builds it so), which takes CAP_SETUID and CAP_SETGID. */
export function setuidWarning(effective: bigint | undefined, uid: number): string | undefined {
  if (uid !== 0 || effective === undefined) return undefined;
  if (hasCapability(effective, CAP.setuid) && hasCapability(effective, CAP.setgid)) return undefined;
  return "running as root without CAP_SETUID/CAP_SETGID: tcpdump may fail to drop to its own user; keep both in the capability bounding set (see docs/systemd/tknock-server.service)";
}

/** Creates and removes a probe file: the only proof that state.json and the daemon lock can be written. */
export function checkStateDirWritable(stateDir: string): void {
  const probe = join(stateDir, `.preflight-${process.pid}.tmp`);
  try {
    const fd = openSync(probe, "wx", 0o600);
    try {
      writeSync(fd, "ok\n");
    } finally {
      closeSync(fd);
      unlinkSync(probe);
    }
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? "";
    const { usage, system } = ExitCode;
    const fix: Record<string, [TknockCode, number, string]> = {
      ENOENT: ["TKNOCK_STATE_DIR", usage, `state directory ${stateDir} does not exist: create it (mkdir -m 700 ${stateDir}) or run tknock-server init`],
      ENOTDIR: ["TKNOCK_STATE_DIR", usage, `state directory ${stateDir} is not a directory: set stateDir in the config to a directory`],
      EACCES: ["TKNOCK_PERMISSION", usage, `cannot write to state directory ${stateDir} (EACCES): run as root or with sudo`],
      EPERM: ["TKNOCK_PERMISSION", usage, `cannot write to state directory ${stateDir} (EPERM): run as root or with sudo`],
      EROFS: ["TKNOCK_READ_ONLY_FS", system, `state directory ${stateDir} is read-only: make it writable (under systemd: ReadWritePaths=${stateDir})`],
      ENOSPC: ["TKNOCK_NO_SPACE", system, `state directory ${stateDir} is full (ENOSPC): free some space; accepted steps must be written before a port opens`],
      EDQUOT: ["TKNOCK_NO_SPACE", system, `state directory ${stateDir} is over quota (EDQUOT): free some space`],
    };
    const [errCode, exitCode, message] = fix[code] ?? [
      "TKNOCK_STATE_DIR",
      usage,
      `cannot write to state directory ${stateDir} (${code || String(cause)}): check that it exists and is writable`,
    ];
    throw new TknockError(errCode, message, exitCode, { cause });
  }
}

/** "any" or an interface of this host's network namespace. */
export function checkInterface(name: string, options: { sysClassNet?: string | undefined; fix?: string } = {}): void {
  if (name === "any") return;
  if (!interfaceExists(name, options.sysClassNet ?? "/sys/class/net")) {
    const fix = options.fix ?? "set interface in server.json";
    throw new TknockError("TKNOCK_NO_INTERFACE", `interface ${name} does not exist: ${fix} (ip -br link lists them, or use "any")`, ExitCode.usage);
  }
}

function interfaceExists(name: string, sysClassNet: string): boolean {
  if (name === "." || name === ".." || name.includes("/")) return false;
  let names: string[];
  try {
    names = readdirSync(sysClassNet);
  } catch {
    // No sysfs (some containers): the kernel's list of interfaces with an address is the next best thing.
    return Object.hasOwn(networkInterfaces(), name);
  }
  return names.includes(name);
}

async function checkListenerNeeds(config: ServerConfig, timeoutMs: number, options: PreflightOptions): Promise<void> {
  switch (config.listener) {
    case "pcap":
    case "nflog":
      return checkTcpdump(config.tcpdump.path, timeoutMs);
    case "log":
      // No tcpdump: the kernel's log is the capture.
      return checkLogSource(config.logSource, {
        timeoutMs,
        ...(options.journalctlPath !== undefined ? { journalctlPath: options.journalctlPath } : {}),
        ...(options.kmsgPath !== undefined ? { kmsgPath: options.kmsgPath } : {}),
      });
  }
}

/** `nft list tables` reads without changing anything, and proves nft runs and may talk to the kernel. */
async function checkFirewallNeeds(config: ServerConfig, timeoutMs: number): Promise<void> {
  switch (config.firewall) {
    case "nftables":
      try {
        await runNftOnce([config.nftables.nftPath], ["list", "tables"], { timeoutMs });
      } catch (err) {
        if (err instanceof Error && /Operation not permitted/i.test(err.message)) {
          throw new TknockError("TKNOCK_PERMISSION", "nft may not read the ruleset (Operation not permitted): run as root or with sudo", ExitCode.usage, {
            cause: err,
          });
        }
        throw err;
      }
      return;
    case "iptables":
      // Reading proves the programs run and may talk to the kernel; ipset with it (the grants live there).
      for (const argv of [
        [config.iptables.iptablesPath, "-w", "5", "-S"],
        [config.iptables.ip6tablesPath, "-w", "5", "-S"],
        [config.iptables.ipsetPath, "list", "-n"],
      ]) {
        await runReadOnly(argv, timeoutMs);
      }
      return;
    case "command":
      // Both programs must exist and be executable now, not at the first knock (the schema made them absolute).
      for (const argv of [config.command?.open, config.command?.close]) {
        const program = argv?.[0] ?? "";
        try {
          accessSync(program, constants.X_OK);
        } catch {
          throw new TknockError(
            "TKNOCK_FIREWALL",
            `command firewall: ${program} is not an executable file: fix command.open/close in the config`,
            ExitCode.system,
          );
        }
      }
      return;
    case "none":
      return;
  }
}

function runReadOnly(argv: readonly string[], timeoutMs: number): Promise<void> {
  const [file, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        return reject(new TknockError("TKNOCK_FIREWALL", `${file} not found: install it (apt-get install iptables ipset)`, ExitCode.system));
      }
      if (/Permission denied|not permitted|must be root/i.test(String(stderr))) {
        return reject(
          new TknockError("TKNOCK_PERMISSION", `${file} may not read the firewall (operation not permitted): run as root or with sudo`, ExitCode.usage),
        );
      }
      reject(new TknockError("TKNOCK_FIREWALL", `${argv.join(" ")} failed: ${String(stderr).trim().slice(0, 300) || err.message}`, ExitCode.system));
    });
  });
}
