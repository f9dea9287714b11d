/**
 * The results table (stdout and docs/benchmarks.md share it), the JSON record, and the docs update.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import type { FloodResult } from "./flood-bench.js";
import type { HealResult } from "./heal-bench.js";
import type { SpaBenchResult, SpaFloodResult } from "./spa-bench.js";
import type { LatencyResult, ModeSummary } from "./latency-bench.js";
import type { ListenersResult } from "./listeners-bench.js";
import type { MatcherResult } from "./matcher-bench.js";
import type { MemoryResult } from "./memory-bench.js";
import type { ParserResult } from "./parser-bench.js";
import type { ProfileSummary } from "./profile-summary.js";
import { START_RATIO_TARGET, type StartResult } from "./start-bench.js";
import { mb, ms, ratio, si, type Summary } from "./stats.js";

export type Machine = {
  cpus: number;
  cpuModel: string;
  kernel: string;
  node: string;
  memoryGiB: number;
  loadAverageStart: number[];
  loadAverageEnd: number[];
  /** Whole-machine CPU use in the 3 s before the bench started (the load average lags by minutes). */
  cpuBusyBeforePercent: number;
};

export type BenchResults = {
  date: string;
  command: string;
  durationSeconds: number;
  machine: Machine;
  matcher?: MatcherResult;
  parser?: ParserResult;
  start?: StartResult;
  latency?: LatencyResult;
  flood?: { tknock?: FloodResult; knockd?: FloodResult; knockdAimed?: FloodResult };
  memory?: MemoryResult;
  memoryHeapCap?: MemoryResult & { nodeFlags: string[] };
  heal?: HealResult;
  listeners?: ListenersResult;
  spa?: SpaBenchResult;
  profiles?: ProfileSummary[];
  skipped: string[];
};

export function machineInfo(loadStart: number[], loadEnd: number[], cpuBusyBeforePercent: number): Machine {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model.trim() ?? "unknown",
    kernel: release(),
    node: process.version,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    loadAverageStart: loadStart,
    loadAverageEnd: loadEnd,
    cpuBusyBeforePercent,
  };
}

type Row = { label: string; tknock: string; knockd: string; ratio: string; target: string; verdict: string };

function trio(s: Summary | undefined): string {
  if (s === undefined || s.n === 0) return "n/a";
  return `${ms(s.median)} / ${ms(s.p90)} / ${ms(s.max)}`;
}

/** "yes"/"no" for a row both tools ran; lower is better unless higherIsBetter. */
function better(a: number | undefined, b: number | undefined, higherIsBetter = false): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) return "";
  if (a === b) return "tie";
  return (higherIsBetter ? a > b : a < b) ? "better" : "WORSE";
}

function met(ok: boolean | undefined): string {
  return ok === undefined ? "" : ok ? "met" : "MISSED";
}

export function buildRows(r: BenchResults): Row[] {
  const rows: Row[] = [];
  const push = (row: Partial<Row> & { label: string }): void => {
    rows.push({ tknock: "", knockd: "", ratio: "", target: "", verdict: "", ...row });
  };
  if (r.matcher) {
    for (const m of r.matcher.rows) {
      push({
        label: `Matcher, ${m.clients} clients: packets/s, one core (x bare loop)`,
        tknock: `${si(m.pps)} (${m.ratioToBaseline.toFixed(2)}x of ${si(m.baselinePps)})`,
        knockd: "n/a",
        target: ">= 1 M",
        verdict: met(m.pps >= 1e6),
      });
    }
  }
  if (r.parser) {
    const p = r.parser;
    push({
      label: "pcap parser: packets/s, bytes/s (vs tcpdump -r FILE -w /dev/null)",
      tknock: `${si(p.parser.pps)}, ${si(p.parser.bytesPerSecond)}B/s`,
      knockd: p.tcpdump ? `tcpdump: ${si(p.tcpdump.pps)}, ${si(p.tcpdump.bytesPerSecond)}B/s` : "n/a",
      ratio: p.ratioToTcpdump !== undefined ? `${p.ratioToTcpdump.toFixed(2)}x` : "",
    });
    push({ label: "parser + matcher (1000 clients): packets/s", tknock: si(p.pipeline.pps), knockd: "n/a" });
  }
  const st = r.start;
  if (st) {
    const node = st.wallMs.node;
    const row = (label: string, c: "knock" | "sequence" | "help"): void =>
      push({
        label: `Client start, wall time median / p90 / max (N = ${st.n}), vs \`node -e 0\` side by side: ${label}`,
        tknock: trio(st.wallMs[c]),
        knockd: `node -e 0: ${trio(node)}`,
        ratio: `${st.ratioToNode[c].toFixed(2)}x of node`,
        target: `<= ${START_RATIO_TARGET}x of node`,
        verdict: met(st.ratioToNode[c] <= START_RATIO_TARGET),
      });
    row("`tknock NAME --delay 0` (a real knock)", "knock");
    row("`tknock sequence NAME`", "sequence");
    row("`tknock --help`", "help");
  }
  const lat = r.latency;
  if (lat) {
    const t: ModeSummary | undefined = lat.modes.tknock;
    const tk: ModeSummary | undefined = lat.modes["tknock-knock"];
    const k: ModeSummary | undefined = lat.modes.knockd;
    const w: ModeSummary | undefined = lat.modes["tknock-wait"];
    const opened = (m: ModeSummary | undefined): string => (m ? ` (${m.opened}/${m.runs})` : "");
    push({
      label: `First knock packet -> first connect, median / p90 / max (N = ${lat.n}): \`tknock NAME\` vs \`knock\``,
      tknock: t ? trio(t.firstKnockToConnectMs) + opened(t) : "",
      knockd: k ? trio(k.firstKnockToConnectMs) + opened(k) : "",
      ratio: ratio(t?.firstKnockToConnectMs.median, k?.firstKnockToConnectMs.median),
      target: "median < 5 ms",
      verdict: [met(t ? t.firstKnockToConnectMs.median < 5 : undefined), better(t?.firstKnockToConnectMs.median, k?.firstKnockToConnectMs.median)]
        .filter(Boolean)
        .join(", "),
    });
    push({
      label: "  the same, both daemons knocked by `knock -d 0` (same client, so only the servers differ)",
      tknock: tk ? trio(tk.firstKnockToConnectMs) + opened(tk) : "",
      knockd: k ? trio(k.firstKnockToConnectMs) + opened(k) : "",
      ratio: ratio(tk?.firstKnockToConnectMs.median, k?.firstKnockToConnectMs.median),
      target: "median < 5 ms",
      verdict: [met(tk ? tk.firstKnockToConnectMs.median < 5 : undefined), better(tk?.firstKnockToConnectMs.median, k?.firstKnockToConnectMs.median)]
        .filter(Boolean)
        .join(", "),
    });
    push({
      label: "Server reaction: last knock -> service's SYN-ACK (knocked by `knock`), median / p90 / max",
      tknock: tk ? trio(tk.lastKnockToConnectMs) : "",
      knockd: k ? trio(k.lastKnockToConnectMs) : "",
      ratio: ratio(tk?.lastKnockToConnectMs.median, k?.lastKnockToConnectMs.median),
      verdict: better(tk?.lastKnockToConnectMs.median, k?.lastKnockToConnectMs.median),
    });
    if (tk?.knockToOpenMs) {
      push({ label: "  daemon's own: last knock captured -> grant in nftables (knockToOpenMs)", tknock: trio(tk.knockToOpenMs), knockd: "not logged" });
      push({ label: "  of which the nft update (firewallMs)", tknock: trio(tk.firewallMs), knockd: "not logged" });
    }
    push({
      label: "Knock command run time, process start included (`tknock NAME` / `knock`), median / p90 / max",
      tknock: t ? trio(t.commandMs) : "",
      knockd: k ? trio(k.commandMs) : "",
      ratio: ratio(t?.commandMs.median, k?.commandMs.median),
      verdict: better(t?.commandMs.median, k?.commandMs.median),
    });
    if (w) {
      push({ label: "`tknock NAME --wait`: whole command, process start included", tknock: trio(w.commandMs) + opened(w), knockd: "no equivalent" });
      push({ label: "`tknock NAME --wait`: first knock -> its own connect", tknock: trio(w.firstKnockToConnectMs), knockd: "no equivalent" });
    }
  }
  const f = r.flood;
  if (f && (f.tknock || f.knockd)) {
    const t = f.tknock;
    const k = f.knockd;
    const cpu = (x: FloodResult | undefined): number | undefined => (x ? x.daemonCpuMs + (x.captureCpuMs ?? 0) + (x.childCpuMs ?? 0) : undefined);
    const cpuPerM = (x: FloodResult | undefined): number | undefined => (x ? (cpu(x)! / x.flood.sent) * 1e6 : undefined);
    push({
      label: "Flood: spoofed SYNs to random knock-range ports, rate the lab sustained",
      tknock: t ? `${si(t.flood.pps)}pkt/s x ${t.flood.seconds.toFixed(1)} s` : "",
      knockd: k ? `${si(k.flood.pps)}pkt/s x ${k.flood.seconds.toFixed(1)} s` : "",
    });
    push({
      label: `Flood: valid knocks that opened (prober connected within 3 s)`,
      tknock: t ? `${t.connected}/${t.knocks} (daemon: ${t.daemonOpened})` : "",
      knockd: k ? `${k.connected}/${k.knocks} (daemon: ${k.daemonOpened})` : "",
      target: "20/20",
      verdict: [met(t ? t.connected === t.knocks : undefined), better(t?.connected, k?.connected, true)].filter(Boolean).join(", "),
    });
    push({
      label: "Flood: first knock -> connect (server capture), median / p90 / max",
      tknock: t ? trio(t.firstKnockToConnectMs) : "",
      knockd: k ? trio(k.firstKnockToConnectMs) : "",
      ratio: ratio(t?.firstKnockToConnectMs.median, k?.firstKnockToConnectMs.median),
      verdict: better(t?.firstKnockToConnectMs.median, k?.firstKnockToConnectMs.median),
    });
    if (t?.knockToOpenMs) push({ label: "  daemon's own knockToOpenMs under flood", tknock: trio(t.knockToOpenMs), knockd: "not logged" });
    push({
      label: "Flood: knock command start -> connect (process start included)",
      tknock: t ? trio(t.knockToConnectMs) : "",
      knockd: k ? trio(k.knockToConnectMs) : "",
      ratio: ratio(t?.knockToConnectMs.median, k?.knockToConnectMs.median),
      verdict: better(t?.knockToConnectMs.median, k?.knockToConnectMs.median),
    });
    push({
      label: "Flood: daemon CPU time (tknock: node + its tcpdump + the commands it ran; knockd: + its commands)",
      tknock: t
        ? `${((cpu(t) ?? 0) / 1000).toFixed(2)} s (${(t.daemonCpuMs / 1000).toFixed(2)} + ${((t.captureCpuMs ?? 0) / 1000).toFixed(2)} + ${((t.childCpuMs ?? 0) / 1000).toFixed(2)})`
        : "",
      knockd: k ? `${((cpu(k) ?? 0) / 1000).toFixed(2)} s` : "",
      ratio: ratio(cpu(t), cpu(k)),
      verdict: better(cpu(t), cpu(k)),
    });
    push({
      label: "Flood: daemon CPU per million flood packets",
      tknock: t ? `${((cpuPerM(t) ?? 0) / 1000).toFixed(2)} s` : "",
      knockd: k ? `${((cpuPerM(k) ?? 0) / 1000).toFixed(2)} s` : "",
      ratio: ratio(cpuPerM(t), cpuPerM(k)),
      verdict: better(cpuPerM(t), cpuPerM(k)),
    });
    push({
      label: "Flood: daemon peak RSS (tknock: node; its tcpdump apart)",
      tknock: t ? `${mb(t.daemonPeakRssBytes)} (+ tcpdump ${mb(t.captureRssBytes)})` : "",
      knockd: k ? mb(k.daemonPeakRssBytes) : "",
      ratio: ratio(t?.daemonPeakRssBytes, k?.daemonPeakRssBytes),
      target: "< 150 MB",
      verdict: [met(t ? t.daemonPeakRssBytes < 150e6 : undefined), better(t?.daemonPeakRssBytes, k?.daemonPeakRssBytes)].filter(Boolean).join(", "),
    });
    if (t) {
      push({
        label: "Flood: packets the capture delivered / dropped (tcpdump's counters)",
        tknock: `${si(t.capturePackets ?? Number.NaN)} / ${si(t.captureKernelDrops ?? Number.NaN)} (of ${si(t.flood.sent)} sent${t.softnetDrops > 0 ? `; ${si(t.softnetDrops)} lost before capture` : ""})`,
        knockd: "its BPF keeps its 4 ports only",
      });
    }
    const a = f.knockdAimed;
    if (a) {
      push({
        label: "Flood aimed at the knock ports (tknock: the random flood above; knockd: its 4 ports): knocks opened",
        tknock: t ? `${t.connected}/${t.knocks}` : "",
        knockd: `${a.connected}/${a.knocks} at ${si(a.flood.pps)}pkt/s`,
        verdict: better(t?.connected, a.connected, true),
      });
      push({
        label: "  daemon CPU during the aimed flood, per million flood packets",
        tknock: t ? `${((cpuPerM(t) ?? 0) / 1000).toFixed(2)} s` : "",
        knockd: `${((cpuPerM(a) ?? 0) / 1000).toFixed(2)} s (${((cpu(a) ?? 0) / 1000).toFixed(2)} s in all)`,
        ratio: ratio(cpuPerM(t), cpuPerM(a)),
        verdict: better(cpuPerM(t), cpuPerM(a)),
      });
    }
  }
  if (r.memory) {
    const m = r.memory;
    push({
      label: `Memory: daemon RSS after ${si(m.sources)} distinct sources (IPv6), one packet each`,
      tknock: `${mb(m.rssAfterBytes)} (peak ${mb(m.peakRssBytes)}; idle ${mb(m.rssBeforeBytes)})`,
      knockd: "not run",
      target: "< 150 MB",
      verdict: met(m.rssAfterBytes < 150e6 && m.peakRssBytes < 150e6),
    });
    push({
      label: "  sources the capture delivered / dropped; matcher sources kept (max)",
      tknock: `${si(m.capturePackets ?? Number.NaN)} / ${si(m.captureKernelDrops ?? Number.NaN)}; ${si(m.matcherSources ?? Number.NaN)} (${si(m.maxSources ?? Number.NaN)})`,
    });
  }
  if (r.memoryHeapCap) {
    const m = r.memoryHeapCap;
    push({
      label: `  the same, daemon run with node ${m.nodeFlags.join(" ")}`,
      tknock: `${mb(m.rssAfterBytes)} (peak ${mb(m.peakRssBytes)}; idle ${mb(m.rssBeforeBytes)}; CPU ${(m.daemonCpuMs / 1000).toFixed(1)} s)`,
      target: "< 150 MB",
      verdict: met(m.rssAfterBytes < 150e6 && m.peakRssBytes < 150e6),
    });
  }
  if (r.heal) {
    for (const c of r.heal.cases) {
      const lost = c.notBack > 0 ? `; ${c.notBack} not back within 5 s` : "";
      push({
        label: `Gate exposed after \`${c.command}\`${c.events ? "" : " (nft monitor stopped: heartbeats go unanswered, each tick checks in full)"}: until the table is back, median / p90 / max (N = ${r.heal.n})`,
        tknock: trio(c.gateMs) + lost,
        knockd: "no equivalent",
        target: c.events ? "p90 < 1 s" : "",
        verdict: c.events ? met(c.notBack === 0 && c.gateMs.p90 < 1000) : "",
      });
      push({ label: "  until the open grant is back too", tknock: trio(c.grantMs) });
    }
    push({
      label: "  daemon's own repairMs (problem found -> gate and grants re-installed)",
      tknock: `${trio(r.heal.daemonRepairMs)} (${r.heal.repairsLogged} repairs logged)`,
    });
  }
  if (r.listeners) listenerRows(r.listeners, push);
  if (r.spa) spaRows(r.spa, push);
  return rows;
}

/** Issue 13: under a flood of the whole range, at least this many of 20 SPA knocks open. */
export const SPA_FLOOD_OPENED_TARGET = 19 / 20;

function spaRows(s: SpaBenchResult, push: (row: Partial<Row> & { label: string }) => void): void {
  const spa = s.modes["tknock-spa"];
  const seq = s.modes["tknock-sequence"];
  const fw = s.modes.fwknop;
  const opened = (m: { opened: number; runs: number } | undefined): string => (m ? ` (${m.opened}/${m.runs})` : "");
  const ratioOf = (a: Summary | undefined, b: Summary | undefined): string =>
    a && b && a.n > 0 && b.n > 0 && b.median > 0 ? `${(a.median / b.median).toFixed(2)}x` : "";
  push({
    label: `SPA: first packet -> connect (server capture), median / p90 / max (N = ${s.n}): \`tknock NAME\` (SPA) vs fwknop`,
    tknock: spa ? trio(spa.firstPacketToConnectMs) + opened(spa) : "",
    knockd: fw ? `fwknop: ${trio(fw.firstPacketToConnectMs)}${opened(fw)}` : "fwknop not installed",
    ratio: ratioOf(spa?.firstPacketToConnectMs, fw?.firstPacketToConnectMs),
    verdict: better(spa?.firstPacketToConnectMs.median, fw?.firstPacketToConnectMs.median),
  });
  push({
    label: "  the same for a sequence knock (4 SYNs, the same daemon, interleaved)",
    tknock: seq ? trio(seq.firstPacketToConnectMs) + opened(seq) : "",
    ratio:
      ratioOf(spa?.firstPacketToConnectMs, seq?.firstPacketToConnectMs) !== ""
        ? `SPA ${ratioOf(spa?.firstPacketToConnectMs, seq?.firstPacketToConnectMs)} of sequence`
        : "",
  });
  push({
    label: "  client start -> connect (node client vs fwknop's C client)",
    tknock: spa ? trio(spa.clientStartToConnectMs) : "",
    knockd: fw ? `fwknop: ${trio(fw.clientStartToConnectMs)}` : "",
    ratio: ratioOf(spa?.clientStartToConnectMs, fw?.clientStartToConnectMs),
  });
  if (spa?.knockToOpenMs) push({ label: "  daemon's own knockToOpenMs, SPA (packet read -> grant in nftables)", tknock: trio(spa.knockToOpenMs) });
  const t = s.flood.tknock;
  const f = s.flood.fwknop;
  if (t || f) {
    const desc = (x: SpaFloodResult | undefined): string => (x ? `${si(x.flood.pps)}pkt/s x ${x.flood.seconds.toFixed(1)} s` : "");
    push({
      label: `SPA under a UDP flood (60-byte datagrams, spoofed sources; tknock: whole knock range, fwknop: its port ${62201}): knocks that opened (prober within 3 s)`,
      tknock: t ? `${t.connected}/${t.knocks} (${desc(t)}; daemon: ${t.daemonOpened}; after it: ${t.openedAfterFlood ? "opens" : "NOT"})` : "",
      knockd: f
        ? `fwknop: ${f.connected}/${f.knocks} (${desc(f)}; daemon: ${f.daemonOpened}; after it: ${f.openedAfterFlood ? "opens" : "NOT"})`
        : "fwknop not installed",
      target: ">= 19/20",
      verdict: t ? met(t.connected / t.knocks >= SPA_FLOOD_OPENED_TARGET) : "",
    });
    push({
      label: "  daemon CPU during the flood (tknock: node + tcpdump)",
      tknock: t
        ? `${((t.daemonCpuMs + (t.captureCpuMs ?? 0)) / 1000).toFixed(2)} s (capture drops ${si(t.captureKernelDrops ?? Number.NaN)}; unknown key ids ${si(t.spaUnknown ?? Number.NaN)})`
        : "",
      knockd: f ? `fwknop: ${(f.daemonCpuMs / 1000).toFixed(2)} s` : "",
    });
  }
}

/** Targets of issue 12: log reaction median <= 20 ms; nflog reaction within 1.5x of pcap; nflog flood CPU within 3x of knockd. */
export const LOG_REACTION_TARGET_MS = 20;
export const NFLOG_REACTION_RATIO_TARGET = 1.5;
export const NFLOG_FLOOD_CPU_RATIO_TARGET = 3;

function listenerRows(l: ListenersResult, push: (row: Partial<Row> & { label: string }) => void): void {
  const pcap = l.reaction.pcap?.lastKnockToConnectMs.median;
  for (const name of ["pcap", "log", "nflog"] as const) {
    const s = l.reaction[name];
    if (!s) continue;
    const median = s.lastKnockToConnectMs.median;
    const vsPcap = name !== "pcap" && pcap !== undefined && pcap > 0 ? median / pcap : undefined;
    push({
      label: `Listener ${name}${name === "log" ? " (kmsg)" : ""}: server reaction, last knock -> SYN-ACK (knocked by \`knock\`), median / p90 / max (N = ${l.n})`,
      tknock: `${trio(s.lastKnockToConnectMs)} (${s.opened}/${s.runs})`,
      knockd: "",
      ratio: vsPcap !== undefined ? `${vsPcap.toFixed(2)}x of pcap` : "",
      target: name === "log" ? `median <= ${LOG_REACTION_TARGET_MS} ms` : name === "nflog" ? `<= ${NFLOG_REACTION_RATIO_TARGET}x of pcap` : "",
      verdict:
        s.opened === 0
          ? "MISSED"
          : name === "log"
            ? met(median <= LOG_REACTION_TARGET_MS)
            : name === "nflog"
              ? met(vsPcap !== undefined ? vsPcap <= NFLOG_REACTION_RATIO_TARGET : undefined)
              : "",
    });
    if (s.knockToOpenMs) push({ label: "  daemon's own knockToOpenMs (last knock read -> grant in nftables)", tknock: trio(s.knockToOpenMs) });
  }
  const k = l.flood.knockd;
  const cpu = (x: FloodResult | undefined): number | undefined => (x ? x.daemonCpuMs + (x.captureCpuMs ?? 0) + (x.childCpuMs ?? 0) : undefined);
  const perM = (cpuMs: number, x: FloodResult): string => (x.flood.sent > 0 ? ((cpuMs / x.flood.sent / 1000) * 1e6).toFixed(2) : "n/a");
  for (const name of ["nflog", "pcap"] as const) {
    const t = l.flood[name];
    if (!t) continue;
    const c = cpu(t)!;
    const kc = cpu(k);
    const cpuRatio = kc !== undefined && kc > 0 ? c / kc : undefined;
    const target = name === "nflog";
    push({
      label: `Listener ${name}, random flood (${si(t.flood.pps)}pkt/s x ${t.flood.seconds.toFixed(1)} s${name === "nflog" ? ", kernel prefilter on (the default)" : ""}): daemon CPU (node + tcpdump + the commands it ran)`,
      tknock: `${(c / 1000).toFixed(2)} s (${(t.daemonCpuMs / 1000).toFixed(2)} + ${((t.captureCpuMs ?? 0) / 1000).toFixed(2)} + ${((t.childCpuMs ?? 0) / 1000).toFixed(2)}; ${perM(c, t)} s per M packets)`,
      knockd:
        k && kc !== undefined ? `${(kc / 1000).toFixed(2)} s (${si(k.flood.pps)}pkt/s x ${k.flood.seconds.toFixed(1)} s; ${perM(kc, k)} s per M packets)` : "",
      ratio: cpuRatio !== undefined ? `${cpuRatio.toFixed(1)}x` : "",
      target: target ? `<= ${NFLOG_FLOOD_CPU_RATIO_TARGET}x of knockd` : "",
      verdict: target ? met(cpuRatio !== undefined ? cpuRatio <= NFLOG_FLOOD_CPU_RATIO_TARGET : undefined) : "",
    });
    push({
      label: `  knocks that opened under the flood (prober connected within 3 s)`,
      tknock: `${t.connected}/${t.knocks} (daemon: ${t.daemonOpened})`,
      knockd: k ? `${k.connected}/${k.knocks}` : "",
      target: target ? "20/20" : "",
      verdict: target ? met(t.connected === t.knocks) : "",
    });
    push({
      label: "  daemon peak RSS (node; its tcpdump apart)",
      tknock: `${mb(t.daemonPeakRssBytes)} (+ tcpdump ${mb(t.captureRssBytes)})`,
      knockd: k ? mb(k.daemonPeakRssBytes) : "",
      target: target ? "< 150 MB" : "",
      verdict: target ? met(t.daemonPeakRssBytes < 150e6) : "",
    });
    push({
      label: "  packets the capture delivered / dropped (tcpdump's counters)",
      tknock: `${si(t.capturePackets ?? Number.NaN)} / ${si(t.captureKernelDrops ?? Number.NaN)} (of ${si(t.flood.sent)} sent)`,
    });
  }
}

export function formatTable(rows: readonly Row[]): string {
  const header: Row = { label: "Measurement", tknock: "tknock", knockd: "knockd", ratio: "tknock/knockd", target: "target", verdict: "result" };
  const cols: (keyof Row)[] = ["label", "tknock", "knockd", "ratio", "target", "verdict"];
  const esc = (s: string): string => s.replace(/\|/g, "\\|");
  const line = (r: Row): string => `| ${cols.map((c) => esc(r[c])).join(" | ")} |`;
  return [line(header), `|${cols.map(() => "---").join("|")}|`, ...rows.map(line)].join("\n");
}

export function machineLine(m: Machine): string {
  return `${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}; CPU ${m.cpuBusyBeforePercent}% busy in the 3 s before the start; load average ${m.loadAverageStart.join(" ")} at start, ${m.loadAverageEnd.join(" ")} at end`;
}

const START = "<!-- bench:results:start -->";
const END = "<!-- bench:results:end -->";

/** Replaces the generated results section of docs/benchmarks.md (between the markers), keeping the prose. */
export function updateDocs(path: string, r: BenchResults, table: string): void {
  const section = [
    START,
    `Measured ${r.date} with \`${r.command}\` (${r.durationSeconds.toFixed(0)} s).`,
    "",
    `Machine: ${machineLine(r.machine)}.`,
    ...(r.skipped.length > 0 ? ["", `Skipped: ${r.skipped.join("; ")}.`] : []),
    "",
    table,
    END,
  ].join("\n");
  const text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmarks\n\n";
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + section + text.slice(b + END.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(path, next);
}
