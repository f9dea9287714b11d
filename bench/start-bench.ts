/**
 * Start time of the client, side by side with `node -e 0` on the same machine in one run: each round runs every
 * command once, in turn, so a busy moment hits all of them alike; the result is the ratio of medians.
 *   - `tknock NAME --delay 0`: a real knock (to 127.0.0.1, whose closed ports answer at once), store read and
 *     step record (both locks, the fsync) included; --delay 0 takes out the inter-knock delays. Each run has its
 *     own store, so no run waits for a window.
 *   - `tknock sequence NAME`: reads the store, prints the ports.
 *   - `tknock --help`.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProfileStore } from "../client/store.js";
import { defaultProfileFields, formatProfileUri } from "../src/protocol/profile-uri.js";
import { CLIENT_BIN } from "../lab/tknock-lab.js";
import { summarize, type Summary } from "./stats.js";

export type StartCommand = "node" | "knock" | "sequence" | "help";
export type StartResult = { n: number; wallMs: Record<StartCommand, Summary>; ratioToNode: Record<Exclude<StartCommand, "node">, number> };

/** The ratio the issue asks for: every client command within 1.5x of a bare node start. */
export const START_RATIO_TARGET = 1.5;

export async function benchStart(opts: { n: number; log: (line: string) => void }): Promise<StartResult> {
  const dir = mkdtempSync(join(tmpdir(), "tknock-start-bench-"));
  try {
    const homes: string[] = [];
    for (let i = 0; i < opts.n; i++) {
      const home = join(dir, `home-${i}`);
      const uri = formatProfileUri({
        client: "bench",
        host: "gw.example.org",
        addr: "127.0.0.1",
        open: [22],
        secret: randomBytes(32),
        ...defaultProfileFields([22]),
      });
      await ProfileStore.open({ dir: home, warn: () => {} }).add("gw", { uri, addr: "127.0.0.1" }, false);
      homes.push(home);
    }
    const argv: Record<StartCommand, (i: number) => string[]> = {
      node: () => ["-e", "0"],
      knock: (i) => [CLIENT_BIN, "--store", homes[i] as string, "gw", "--delay", "0"],
      sequence: () => [CLIENT_BIN, "--store", homes[0] as string, "sequence", "gw"],
      help: () => [CLIENT_BIN, "--help"],
    };
    const times: Record<StartCommand, number[]> = { node: [], knock: [], sequence: [], help: [] };
    // A code cache that this Node rejects (another version, other V8 flags) costs the client its compile time.
    const cache = spawnSync(process.execPath, [CLIENT_BIN, "--help"], { env: { ...process.env, TKNOCK_DEBUG: "1" }, encoding: "utf8" });
    opts.log(`start: ${/debug: (code cache [a-z (),]+)/.exec(cache.stderr)?.[1] ?? "code cache: no report"}`);
    opts.log(`start: ${opts.n} rounds of node -e 0, tknock NAME, tknock sequence NAME, tknock --help`);
    for (let i = 0; i < opts.n; i++) {
      for (const c of Object.keys(argv) as StartCommand[]) {
        const t0 = performance.now();
        const r = spawnSync(process.execPath, argv[c](i), { stdio: ["ignore", "ignore", "pipe"] });
        times[c].push(performance.now() - t0);
        if (r.status !== 0) throw new Error(`${c} exited ${r.status}: ${String(r.stderr).trim().slice(0, 200)}`);
      }
    }
    const wallMs = {
      node: summarize(times.node),
      knock: summarize(times.knock),
      sequence: summarize(times.sequence),
      help: summarize(times.help),
    };
    const ratio = (c: Exclude<StartCommand, "node">): number => wallMs[c].median / wallMs.node.median;
    return { n: opts.n, wallMs, ratioToNode: { knock: ratio("knock"), sequence: ratio("sequence"), help: ratio("help") } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
