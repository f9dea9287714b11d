/**
 * Part "heal": how long the protected port is exposed after the gate is removed behind the daemon's back. In the
 * server namespace, while `tknock-server run` runs with one grant open, a poller runs `nft flush ruleset` (or
 * `nft delete table inet tknock`) and then `nft list table inet tknock` in a tight loop until the table is back
 * (the daemon installs the gate in one transaction, so a listed table is the whole gate) and until the grant is
 * back in it. Measured from just before the command starts, so the command's own run time counts as exposed.
 * Then the same with the daemon's `nft monitor` child stopped (SIGSTOP): the periodic 1 s check alone.
 */
import { TknockLab } from "../lab/tknock-lab.js";
import { findProcess } from "./proc.js";
import { sleep, summarize, type Summary } from "./stats.js";

export type HealCase = {
  readonly command: string;
  readonly events: boolean;
  /** Command start -> our table listed again. */
  readonly gateMs: Summary;
  /** Command start -> the open grant listed again. */
  readonly grantMs: Summary;
  /** Runs where the gate was not back within the poller's 5 s bound. */
  readonly notBack: number;
};

export type HealResult = {
  readonly n: number;
  readonly cases: HealCase[];
  /** The daemon's own repairMs (check found the problem -> gate and grants re-installed). */
  readonly daemonRepairMs: Summary;
  readonly repairsLogged: number;
};

/** Runs inside the server namespace: argv = JSON options; prints one JSON array of { gateMs, grantMs }. */
const POLLER_JS = `
const { spawnSync } = require("child_process");
const { command, n, grantSrc } = JSON.parse(process.argv[1]);
const nft = (args) => spawnSync("nft", args, { encoding: "utf8" });
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const out = [];
for (let i = 0; i < n; i++) {
  // Start from a settled gate with the grant in it.
  for (let j = 0; j < 500 && !nft(["list", "table", "inet", "tknock"]).stdout.includes(grantSrc); j++) sleep(10);
  // A random phase against the daemon's 1 s check, so the check-only case samples the whole second.
  sleep(300 + Math.floor(Math.random() * 1000));
  const t0 = performance.now();
  const r = nft(command);
  if (r.status !== 0) { out.push({ error: r.stderr }); continue; }
  let gateMs, grantMs;
  while (performance.now() - t0 < 5000 && grantMs === undefined) {
    const l = nft(["list", "table", "inet", "tknock"]);
    const now = performance.now() - t0;
    if (l.status === 0 && gateMs === undefined) gateMs = now;
    if (l.status === 0 && l.stdout.includes(grantSrc)) grantMs = now;
  }
  out.push({ gateMs, grantMs });
}
console.log(JSON.stringify(out));
`;

type Sample = { gateMs?: number; grantMs?: number; error?: string };

export async function benchHeal(o: { n: number; log: (line: string) => void }): Promise<HealResult> {
  const t = await TknockLab.create({ openSeconds: 600 });
  const service = t.startService(t.protectPort);
  try {
    await t.enrollClient("alice", ["--period", "30"]);
    await t.startDaemon();
    const knock = await t.client(["alice", "--wait", "5"]);
    if (knock.code !== 0) throw new Error(`the knock did not open: ${knock.stderr.trim()}`);
    const grantSrc = t.lab.host("client").ipv4;
    const mark = t.logCount;
    const cases: HealCase[] = [];
    const run = async (command: string[], events: boolean): Promise<void> => {
      o.log(`heal: ${command.join(" ")} x ${o.n}${events ? "" : ", nft monitor stopped"}`);
      const r = await t.lab.exec("server", ["node", "-e", POLLER_JS, JSON.stringify({ command, n: o.n, grantSrc })], { timeoutMs: o.n * 10_000 + 30_000 });
      if (r.code !== 0) throw new Error(`poller failed: ${r.stderr.trim()}`);
      const samples = JSON.parse(r.stdout.trim()) as Sample[];
      const failed = samples.find((s) => s.error !== undefined);
      if (failed) throw new Error(`${command.join(" ")} failed: ${failed.error}`);
      cases.push({
        command: `nft ${command.join(" ")}`,
        events,
        gateMs: summarize(samples.flatMap((s) => (s.gateMs === undefined ? [] : [s.gateMs]))),
        grantMs: summarize(samples.flatMap((s) => (s.grantMs === undefined ? [] : [s.grantMs]))),
        notBack: samples.filter((s) => s.gateMs === undefined).length,
      });
    };
    await run(["flush", "ruleset"], true);
    await run(["delete", "table", "inet", "tknock"], true);
    const monitor = findProcess(t.lab.host("server").ns, (argv) => argv.includes("monitor") && /(^|\/)nft$/.test(argv[0] ?? ""));
    if (monitor === undefined) throw new Error("the daemon's nft monitor is not running");
    process.kill(monitor, "SIGSTOP");
    try {
      await run(["flush", "ruleset"], false);
    } finally {
      process.kill(monitor, "SIGCONT");
    }
    await sleep(500);
    const repairs = t.logsSince(mark).filter((l) => l.level === 50 && typeof l["repairMs"] === "number");
    return { n: o.n, cases, daemonRepairMs: summarize(repairs.map((l) => l["repairMs"] as number)), repairsLogged: repairs.length };
  } finally {
    service.kill();
    await t.destroy();
  }
}
