import type { Command } from "commander";
import { join } from "node:path";
import type { CliIo } from "../../src/cli-io.js";
import { ReplayLog } from "../replay-log.js";
import { loadConfigOf } from "./context.js";
import { parseDurationMs } from "./duration.js";

export function registerReplays(program: Command, io: CliIo): void {
  program
    .command("replays")
    .description("recorded replays, clock-skew events, brute-force sources and lockouts")
    .option("--since <duration>", "only the last DURATION (90s, 10m, 2h, 7d)")
    .option("--json", "one JSON array")
    .action((opts: { since?: string; json?: boolean }, cmd: Command) => {
      const { config } = loadConfigOf(cmd);
      const sinceMs = opts.since === undefined ? 0 : io.clock.nowMs() - parseDurationMs(opts.since, "--since");
      const log = new ReplayLog(join(config.stateDir, "replays.jsonl"), config.replayLog);
      const records = log.read({ sinceMs });
      if (opts.json === true) {
        io.out(JSON.stringify(records));
        return;
      }
      if (records.length === 0) io.out("no recorded events");
      for (const r of records) {
        const offset = r.offsetWindows !== undefined ? ` offset ${r.offsetWindows > 0 ? "+" : ""}${r.offsetWindows} windows` : "";
        const extra = `${offset}${r.address !== undefined ? ` for ${r.address}` : ""}`;
        io.out(`${r.time} ${r.kind} from ${r.source}${r.client ? ` client ${r.client}` : ""}${r.step !== undefined ? ` step ${r.step}` : ""}${extra}`);
      }
    });
}
