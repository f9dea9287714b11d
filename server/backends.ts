import type { ServerConfig } from "./config/schema.js";
import type { Firewall, Listener } from "../src/ports.js";
import { NftablesFirewall } from "./firewalls/nftables/nftables-firewall.js";
import { nftTablePresent } from "./firewalls/nftables/table-present.js";
import { createPcapListener } from "./listeners/pcap/listener.js";
import { createLogListener, TKNOCK_LOG_PREFIX } from "./listeners/log/listener.js";
import type { Logger } from "./logger.js";
import { join } from "node:path";
import { ConfigError } from "../src/errors.js";
import { systemClock } from "../src/ports.js";
import { CommandFirewall } from "./firewalls/command/command-firewall.js";
import { NoneFirewall } from "./firewalls/none/none-firewall.js";
import { IptablesFirewall, iptablesHasChain } from "./firewalls/iptables/iptables-firewall.js";
import { runNftOnce } from "./firewalls/nftables/nft-process.js";
import { inputChainName } from "./firewalls/iptables/iptables-rules.js";

/** The one place config names turn into adapters; a new backend is one more case here. */
export function createFirewall(config: ServerConfig, log?: Logger): Firewall {
  switch (config.firewall) {
    case "nftables":
      return new NftablesFirewall({ table: config.nftables.table, nftPath: config.nftables.nftPath, ...(log ? { log } : {}) });
    case "iptables":
      return new IptablesFirewall({ ...config.iptables, ...(log ? { log } : {}) });
    case "command": {
      const c = config.command;
      if (!c) throw new ConfigError(['command: is missing: firewall "command" needs {"open": [...], "close": [...]}'], "server.json");
      return new CommandFirewall({ ...c, statePath: commandGrantsPath(config.stateDir), ...(log ? { log } : {}) });
    }
    case "none":
      return new NoneFirewall(systemClock, log);
  }
}

/** Where the command backend lists the grants it opened and has not closed yet. */
export function commandGrantsPath(stateDir: string): string {
  return join(stateDir, "command-grants.json");
}

export function createListener(config: ServerConfig, log: Logger): Listener {
  switch (config.listener) {
    case "pcap":
      return createPcapListener({
        interface: config.interface,
        tcpdumpPath: config.tcpdump.path,
        bufferKiB: config.tcpdump.bufferKiB,
        localAddresses: config.tcpdump.localAddresses,
        knockRange: config.knockRange,
        log,
      });
    case "nflog":
      return createPcapListener({
        interface: config.interface,
        nflogGroup: config.nflogGroup,
        tcpdumpPath: config.tcpdump.path,
        bufferKiB: config.tcpdump.bufferKiB,
        knockRange: config.knockRange,
        log,
      });
    case "log":
      return createLogListener({
        source: config.logSource,
        knockRange: config.knockRange,
        requirePrefix: config.logExisting ? undefined : TKNOCK_LOG_PREFIX,
        log: (level, message, fields) => log[level](fields, message),
      });
  }
}

/**
 * Whether the gate is in the kernel now, and what it is called there (for `status`). `unprotected`: the backend
 * protects nothing by design (none), which status reports as a problem of its own.
 */
export async function gatePresent(config: ServerConfig): Promise<{ present: boolean; name: string; unprotected?: boolean }> {
  switch (config.firewall) {
    case "nftables":
      return { present: await nftTablePresent([config.nftables.nftPath], config.nftables.table), name: `table inet ${config.nftables.table}` };
    case "iptables":
      return {
        present: await iptablesHasChain(config.iptables.iptablesPath, inputChainName(config.iptables.prefix)),
        name: `iptables chain ${inputChainName(config.iptables.prefix)}`,
      };
    case "command":
      // Nothing of ours in the kernel: the operator's commands manage the firewall.
      return { present: true, name: "command backend (your open/close commands; fail-open if the daemon dies)" };
    case "none":
      return { present: false, name: 'firewall "none" (log only)', unprotected: true };
  }
}

/**
 * Whether Docker's chains are in the kernel (gateForward "auto"): its DOCKER-USER chain (iptables, nf_tables or
 * legacy) or its nftables table. Asked once at start; a read that fails counts as "no Docker".
 */
export async function dockerPresent(config: ServerConfig): Promise<boolean> {
  try {
    switch (config.firewall) {
      case "nftables": {
        const tables = await runNftOnce([config.nftables.nftPath], ["list", "tables"], { timeoutMs: 5000 });
        if (/^table ip docker-bridges$/m.test(tables.stdout)) return true;
        const chain = await runNftOnce([config.nftables.nftPath], ["list", "chain", "ip", "filter", "DOCKER-USER"], {
          timeoutMs: 5000,
          allowFailure: () => true,
        });
        return chain.stdout.includes("DOCKER-USER");
      }
      case "iptables":
        return await iptablesHasChain(config.iptables.iptablesPath, "DOCKER-USER");
      case "command":
      case "none":
        return false;
    }
  } catch {
    return false;
  }
}
