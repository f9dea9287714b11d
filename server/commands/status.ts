import type { Command } from "commander";
import { join } from "node:path";
import { ExitWith, type CliIo } from "../../src/cli-io.js";
import { ExitCode } from "../../src/errors.js";
import { stepAt } from "../../src/protocol/window.js";
import { readClients } from "../clients-file.js";
import { createFirewall, gatePresent } from "../backends.js";
import { inspectDaemonLock } from "../daemon-lock.js";
import { firewallPermissionError } from "../firewall-errors.js";
import { withPermissionFix } from "../../src/fs-errors.js";
import { readRuntimeStatus, runtimeStatusPath } from "../runtime-status.js";
import { StepStore } from "../state.js";
import { assessStatus, formatGrantLines, formatStatusLines } from "../status-report.js";
import { loadConfigOf } from "./context.js";

export function registerStatus(program: Command, io: CliIo): void {
  program
    .command("status")
    .summary(`is tknock protecting now: daemon, capture, gate, grants (exit ${ExitCode.unhealthy} when not)`)
    .description(
      "whether tknock protects anything now: daemon running (pid), packet capture, gate present in the kernel, " +
        `grants with time left, clients and their last accepted step. Exits ${ExitCode.unhealthy} when the daemon is down or stuck, ` +
        "the gate is missing or capture is failing",
    )
    .option("--json", "machine-readable output (the same facts)")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      let gate;
      try {
        gate = await gatePresent(config);
      } catch (err) {
        throw firewallPermissionError(err, "read", config.nftables.table);
      }
      const firewall = createFirewall(config);
      let grants;
      try {
        grants = await firewall.list();
      } catch (err) {
        throw firewallPermissionError(err, "read", config.nftables.table);
      } finally {
        await firewall.close();
      }
      const nowMs = io.clock.nowMs();
      const lock = inspectDaemonLock(config.stateDir);
      const report = assessStatus({ nowMs, lock, runtime: readRuntimeStatus(runtimeStatusPath(config.stateDir)), gate });
      const clients = readClients(config.clientsFile).clients;
      const statePath = join(config.stateDir, "state.json");
      let steps;
      try {
        steps = StepStore.readOnly(statePath);
      } catch (err) {
        throw withPermissionFix(err, "read", `state file ${statePath}`);
      }
      const rows = Object.entries(clients).map(([name, r]) => ({
        name,
        currentStep: stepAt(nowMs, r.periodSeconds),
        lastAcceptedStep: steps[name] ?? null,
      }));
      if (opts.json === true) {
        io.out(JSON.stringify({ ...report, grants, clients: rows }));
      } else {
        for (const line of [...formatStatusLines(report, nowMs), ...formatGrantLines(grants)]) io.out(line);
        io.out(rows.length === 0 ? "clients: none" : "clients:");
        for (const r of rows) {
          io.out(`  ${r.name}: last accepted step ${r.lastAcceptedStep ?? "never"} (current step ${r.currentStep})`);
        }
      }
      if (!report.ok) throw new ExitWith(ExitCode.unhealthy);
    });
}
