/**
 * `npm run bench` (as root for the lab parts): tknock's benchmarks, side by side with knockd, in one run.
 *
 *   npm run bench                                   everything (about 5 minutes)
 *   npm run bench -- --only matcher,parser          pure parts only (no root needed)
 *   npm run bench -- --n 20 --flood-seconds 5       shorter
 *
 * Parts: matcher, parser (pure); start (client start time vs `node -e 0`, no root); latency, flood, memory, knockd,
 * heal, listeners (lab: network namespaces, needs root). "listeners" runs the server reaction with each listener
 * (pcap, log, nflog) and the random flood against the nflog daemon, the pcap daemon and knockd. "spa" (its own lab)
 * runs SPA latency beside sequence knocks and fwknop, and UDP floods: tknock's whole range vs fwknop's port 62201.
 * --profile runs each daemon under node --cpu-prof, and the matcher's largest case under the inspector's
 * profiler, and prints where the CPU time went.
 * "knockd" adds knockd's side to latency and flood (whichever of those are selected; both when alone).
 * Prints a table, writes bench-results/bench-DATE.json (+ latest.json), and rewrites the results section of
 * docs/benchmarks.md when every part ran (or with --docs). Namespaces and processes are always cleaned up.
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../lab/tknock-lab.js";
import { BenchLab } from "./bench-lab.js";
import { benchFlood } from "./flood-bench.js";
import { benchHeal } from "./heal-bench.js";
import { buildFloodSender } from "./flood-sender.js";
import { ensureKnockdInstalled } from "./knockd.js";
import { benchLatency, latencyClientNames } from "./latency-bench.js";
import { benchListeners, listenersClientNames } from "./listeners-bench.js";
import { benchMatcher } from "./matcher-bench.js";
import { benchMemory } from "./memory-bench.js";
import { benchParser } from "./parser-bench.js";
import { benchSpa } from "./spa-bench.js";
import { benchStart } from "./start-bench.js";
import { cpuBusyPercent, loadAverage } from "./proc.js";
import { formatProfile, summarizeCpuProfile } from "./profile-summary.js";
import { buildRows, formatTable, machineInfo, machineLine, updateDocs, type BenchResults } from "./report.js";

/** A heap cap for the daemon's node (an operator's choice, e.g. in the systemd unit), tried in the memory part. */
const HEAP_CAP_FLAGS = ["--max-old-space-size=128", "--max-semi-space-size=2"];

const ALL_PARTS = ["matcher", "parser", "start", "latency", "flood", "memory", "knockd", "heal", "listeners", "spa"] as const;
type Part = (typeof ALL_PARTS)[number];

type Options = {
  parts: Set<Part>;
  n: number;
  floodSeconds: number;
  floodMaxPackets: number;
  floodKnocks: number;
  memorySources: number;
  memoryRate: number;
  packets: number;
  docs: boolean | undefined;
  profile: boolean;
  healN: number;
};

const USAGE = `usage: npm run bench -- [--only PART,...] [--n N] [--flood-seconds S] [--flood-max-packets N]
                        [--memory-sources N] [--memory-rate PPS] [--packets N] [--heal-n N] [--profile]
                        [--docs | --no-docs]
parts: ${ALL_PARTS.join(", ")}`;

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    parts: new Set(ALL_PARTS),
    n: 50,
    floodSeconds: 10,
    floodMaxPackets: 20_000_000,
    floodKnocks: 20,
    memorySources: 1_000_000,
    memoryRate: 100_000,
    packets: 1_000_000,
    docs: undefined,
    profile: false,
    healN: 20,
  };
  const num = (name: string, v: string | undefined, min: number, max: number): number => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min || x > max) throw new Error(`${name} must be a number from ${min} to ${max}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string | undefined => argv[++i];
    switch (a) {
      case "--only": {
        const list = (v() ?? "")
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = list.filter((p) => !(ALL_PARTS as readonly string[]).includes(p));
        if (bad.length > 0 || list.length === 0) throw new Error(`--only takes parts from: ${ALL_PARTS.join(", ")}`);
        o.parts = new Set(list as Part[]);
        break;
      }
      case "--n":
        o.n = num(a, v(), 1, 1000);
        break;
      case "--flood-seconds":
        o.floodSeconds = num(a, v(), 3, 60);
        break;
      case "--flood-max-packets":
        o.floodMaxPackets = num(a, v(), 1000, 100_000_000);
        break;
      case "--memory-sources":
        o.memorySources = num(a, v(), 1000, 10_000_000);
        break;
      case "--memory-rate":
        o.memoryRate = num(a, v(), 1000, 5_000_000);
        break;
      case "--packets":
        o.packets = num(a, v(), 10_000, 10_000_000);
        break;
      case "--heal-n":
        o.healN = num(a, v(), 1, 200);
        break;
      case "--profile":
        o.profile = true;
        break;
      case "--docs":
        o.docs = true;
        break;
      case "--no-docs":
        o.docs = false;
        break;
      case "-h":
      case "--help":
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  return o;
}

function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function runLabParts(o: Options, results: BenchResults): Promise<void> {
  const p = o.parts;
  // The knockd package also brings `knock`, the small client that sends the flood part's knocks for both daemons.
  const knockPackage = (p.has("knockd") || p.has("latency") || p.has("flood") || p.has("listeners")) && ensureKnockdInstalled(log);
  const knockd = p.has("knockd") && knockPackage;
  if (p.has("knockd") && !knockd) results.skipped.push("knockd: not installed and apt-get install knockd failed");
  // knockd alone: its side of both latency and flood.
  const latency = p.has("latency") || (knockd && !p.has("flood"));
  const tknockLatency = p.has("latency");
  let flood = p.has("flood") || (knockd && !p.has("latency"));
  let tknockFlood = p.has("flood");
  let memory = p.has("memory");
  const listeners = p.has("listeners") && knockPackage;
  if (p.has("listeners") && !knockPackage) results.skipped.push("listeners: needs `knock` from the knockd package (apt-get install knockd)");
  let listenersFlood = listeners;
  if (flood || memory || listeners) {
    try {
      buildFloodSender();
    } catch (err) {
      results.skipped.push(`flood, memory: cannot compile bench/flood.c (install gcc): ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
      flood = tknockFlood = memory = listenersFlood = false;
    }
  }
  if (tknockFlood && !knockPackage) {
    results.skipped.push("flood: needs `knock` from the knockd package to send the valid knocks (apt-get install knockd)");
    flood = tknockFlood = false;
  }

  log("lab: creating namespaces");
  // Registered before the lab's own hooks (which delete the namespaces and exit), so this runs first.
  // A let, set once below: the handler reads it before the lab exists, where a const would still be unset (TDZ).
  // eslint-disable-next-line prefer-const
  let current: BenchLab | undefined;
  const onSignal = (): void => current?.killAllSync();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // The listeners part compares the nflog flood with knockd's from the same run.
  const bl = await BenchLab.create({ clientHosts: 10, knockd: knockd || listeners });
  current = bl;
  const profileDir = join(REPO_ROOT, "bench-results", "profiles");
  if (o.profile) {
    // Each daemon start writes its own .cpuprofile when it exits; summaries go into the JSON and the log.
    mkdirSync(profileDir, { recursive: true });
    bl.daemonNodeFlags = ["--cpu-prof", `--cpu-prof-dir=${profileDir}`];
  }
  const profilesBefore = o.profile ? new Set(readdirSync(profileDir)) : new Set<string>();
  // One part failing (a tool missing, a daemon that would not start) must not lose the others' results.
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      results.skipped.push(`${what}: failed: ${err instanceof Error ? err.message : String(err)}`);
      log(`${what} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  };
  try {
    const names = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`);
    await bl.enroll([
      ...Object.values(latencyClientNames(o.n)).flat(),
      ...names("flood", o.floodKnocks),
      ...(listeners ? listenersClientNames(o.n, o.floodKnocks) : []),
    ]);
    if (latency) {
      await attempt("latency", async () => {
        if (tknockLatency) await bl.startDaemon();
        if (knockd) await bl.startKnockd();
        log(`latency: N = ${o.n}${tknockLatency ? ", tknock" : ""}${knockd ? ", knockd" : ""}`);
        results.latency = await benchLatency(bl, { n: o.n, tknock: tknockLatency, knockd, knockClient: knockPackage, log });
      });
    }
    if (flood) {
      const floods: NonNullable<BenchResults["flood"]> = {};
      results.flood = floods;
      const common = { seconds: o.floodSeconds, maxPackets: o.floodMaxPackets, knocks: o.floodKnocks, clientNames: names("flood", o.floodKnocks), log };
      if (tknockFlood) {
        await attempt("flood tknock", async () => {
          await bl.knockd?.stop();
          log(`flood: tknock, ${o.floodSeconds} s`);
          floods.tknock = await benchFlood(bl, "tknock", common);
        });
      }
      if (knockd) {
        await attempt("flood knockd", async () => {
          await bl.daemon?.stop();
          log(`flood: knockd, ${o.floodSeconds} s`);
          floods.knockd = await benchFlood(bl, "knockd", common);
          // For tknock every flood into the range is aimed at its knock ports; this is knockd's equivalent.
          log(`flood: knockd, aimed at its knock ports, ${o.floodSeconds} s`);
          floods.knockdAimed = await benchFlood(bl, "knockd", { ...common, aimed: true });
        });
      }
    }
    if (listeners) {
      await attempt("listeners", async () => {
        await bl.daemon?.stop();
        const floodOpts = listenersFlood ? { seconds: o.floodSeconds, maxPackets: o.floodMaxPackets, knocks: o.floodKnocks } : undefined;
        results.listeners = await benchListeners(bl, { n: o.n, flood: floodOpts, knockd: true, log });
        for (const e of results.listeners.errors) results.skipped.push(`listeners, ${e}`);
      });
    }
    if (memory) {
      await attempt("memory", async () => {
        await bl.knockd?.stop();
        log(`memory: ${o.memorySources} IPv6 sources at ${o.memoryRate} pkt/s`);
        results.memory = await benchMemory(bl, { sources: o.memorySources, rate: o.memoryRate, log });
      });
      // The same with V8's heap capped: shows how much of the RSS is garbage V8 had no reason to collect yet.
      await attempt("memory (heap cap)", async () => {
        const flags = bl.daemonNodeFlags;
        bl.daemonNodeFlags = [...flags, ...HEAP_CAP_FLAGS];
        try {
          log(`memory: again with node ${HEAP_CAP_FLAGS.join(" ")}`);
          results.memoryHeapCap = { ...(await benchMemory(bl, { sources: o.memorySources, rate: o.memoryRate, log })), nodeFlags: HEAP_CAP_FLAGS };
        } finally {
          bl.daemonNodeFlags = flags;
        }
      });
    }
  } finally {
    log("lab: tearing down");
    await bl.destroy();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (o.profile) {
    results.profiles = [];
    for (const f of readdirSync(profileDir)
      .filter((x) => x.endsWith(".cpuprofile") && !profilesBefore.has(x))
      .sort()) {
      const summary = summarizeCpuProfile(join(profileDir, f));
      results.profiles.push(summary);
      log(formatProfile(summary, `daemon profile ${f}`));
    }
  }
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const busyBefore = await cpuBusyPercent(3000);
  const started = performance.now();
  const loadStart = loadAverage();
  const argv = process.argv.slice(2);
  const results: BenchResults = {
    date: new Date().toISOString(),
    command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}`,
    durationSeconds: 0,
    machine: machineInfo(loadStart, loadStart, busyBefore),
    skipped: [],
  };
  log(`bench: parts ${[...o.parts].join(", ")}; CPU ${busyBefore}% busy before the start; load average ${loadStart.join(" ")}`);
  let failed = false;
  try {
    if (o.parts.has("matcher")) results.matcher = benchMatcher({ packets: o.packets, profile: o.profile, log });
    if (o.parts.has("parser")) results.parser = await benchParser({ packets: o.packets, tmpDir: tmpdir(), log });
    if (o.parts.has("start")) results.start = await benchStart({ n: o.n, log });
    const lab = ["latency", "flood", "memory", "knockd", "listeners"].filter((x) => o.parts.has(x as Part));
    if (lab.length > 0) {
      if (process.getuid?.() !== 0) {
        results.skipped.push(`${lab.join(", ")}: need root (network namespaces, nftables, raw sockets): run \`sudo npm run bench\``);
        log(`skipping ${lab.join(", ")}: not root`);
      } else {
        await runLabParts(o, results);
      }
    }
    if (o.parts.has("spa")) {
      if (process.getuid?.() !== 0) results.skipped.push("spa: needs root (network namespaces, nftables, raw sockets)");
      else {
        results.spa = await benchSpa({ n: o.n, floodSeconds: o.floodSeconds, floodMaxPackets: o.floodMaxPackets, floodKnocks: o.floodKnocks, log });
        results.skipped.push(...results.spa.skipped);
      }
    }
    if (o.parts.has("heal")) {
      if (process.getuid?.() !== 0) results.skipped.push("heal: needs root (network namespaces, nftables)");
      else results.heal = await benchHeal({ n: o.healN, log });
    }
  } catch (err) {
    failed = true;
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  results.durationSeconds = (performance.now() - started) / 1000;
  results.machine = machineInfo(loadStart, loadAverage(), busyBefore);

  const table = formatTable(buildRows(results));
  process.stdout.write(`\n${table}\n\nMachine: ${machineLine(results.machine)}\n`);
  if (results.skipped.length > 0) process.stdout.write(`Skipped: ${results.skipped.join("; ")}\n`);

  const dir = join(REPO_ROOT, "bench-results");
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const file = join(dir, `bench-${results.date.replace(/[:.]/g, "-")}.json`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, json);
    writeFileSync(join(dir, "latest.json"), json);
    process.stdout.write(`JSON: ${file}\n`);
  } catch (err) {
    failed = true;
    process.stderr.write(`bench: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})\n`);
  }

  const everything = ALL_PARTS.every((x) => o.parts.has(x));
  if (!failed && (o.docs ?? (everything && results.skipped.length === 0))) {
    const docs = join(REPO_ROOT, "docs/benchmarks.md");
    updateDocs(docs, results, table);
    process.stdout.write(`updated ${docs}\n`);
  }
  process.stdout.write(`total ${results.durationSeconds.toFixed(0)} s\n`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
