import type { Command } from "commander";
import type { CliIo } from "../../src/cli-io.js";
import { createFirewall } from "../backends.js";
import { firewallPermissionError } from "../firewall-errors.js";
import { loadConfigOf } from "./context.js";

export function registerFirewall(program: Command, io: CliIo): void {
  const fw = program.command("firewall").description("manage the gate (the firewall backend of server.json)");
  fw.command("remove")
    .description(
      "delete what tknock added to the firewall (nftables: its table; iptables: its chains, jumps and ipset sets; command: runs the close command for every open grant): the protected ports are no longer gated",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      const firewall = createFirewall(config);
      try {
        await firewall.remove();
      } catch (err) {
        throw firewallPermissionError(err, "remove", config.nftables.table);
      } finally {
        await firewall.close();
      }
      const what = {
        nftables: `table inet ${config.nftables.table}`,
        iptables: `chains ${config.iptables.prefix}-in/-fwd and their ipset sets`,
        command: "every open grant (close command run)",
        none: "nothing (firewall none)",
      }[config.firewall];
      io.out(`removed ${what}: protected ports are open to everyone unless another firewall closes them`);
    });
}
