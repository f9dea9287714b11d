import type { ServerConfig } from "./config/schema.js";
import type { Firewall, Listener } from "../src/ports.js";
import { NftablesFirewall } from "./firewalls/nftables/nftables-firewall.js";
import { nftTablePresent } from "./firewalls/nftables/table-present.js";
import { createPcapListener } from "./listeners/pcap/listener.js";
import { createLogListener, TKNOCK_LOG_PREFIX } from "./listeners/log/listener.js";
import type { Logger } from "./logger.js";

/** The one place config names turn into adapters; a new backend is one more case here. */
export function createFirewall(config: ServerConfig, log?: Logger): Firewall {
  switch (config.firewall) {
    case "nftables":
      return new NftablesFirewall({ table: config.nftables.table, nftPath: config.nftables.nftPath, ...(log ? { log } : {}) });
  }
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

/** Whether the gate is in the kernel now, and what it is called there (for `status`). */
export async function gatePresent(config: ServerConfig): Promise<{ present: boolean; name: string }> {
  switch (config.firewall) {
    case "nftables":
      return { present: await nftTablePresent([config.nftables.nftPath], config.nftables.table), name: `table inet ${config.nftables.table}` };
  }
}
