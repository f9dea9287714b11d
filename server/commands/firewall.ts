import type { Command } from "commander";
import type { CliIo } from "../../src/cli-io.js";
import { createFirewall } from "../backends.js";
import { firewallPermissionError } from "../firewall-errors.js";
import { loadConfigOf } from "./context.js";

export function registerFirewall(program: Command, io: CliIo): void {
  const fw = program.command("firewall").description("manage the nftables gate");
  fw.command("remove")
    .description("delete tknock's nftables table: the protected ports are no longer gated")
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
      io.out(`removed table inet ${config.nftables.table}: protected ports are open to everyone unless another firewall closes them`);
    });
}
