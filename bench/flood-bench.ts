/**
 * Part 3 (and the knockd half of part 5): a bounded SYN flood from the "other" host, spoofed sources spread over
 * 198.18.1.0-198.19.255.255 (inside the lab prefix), to random ports of the knock range, as fast as the sender
 * goes, for floodSeconds (and at most maxPackets). Meanwhile 20 valid knocks from the client hosts, each watched
 * by a connect prober (3 s), sent for both daemons by knockd's `knock -d 0` (tknock's: the current step's ports). Measured: knocks that opened (prober connected, and the daemon said so), the
 * daemon's CPU time and peak RSS during the part (a fresh daemon per part, so VmHWM is this part's), and what the
 * capture saw and dropped (tcpdump's own counters, read through the daemon's stats).
 */
import { KNOCK_RANGE, PROTECT_PORT, type BenchLab, type BenchListener } from "./bench-lab.js";
import { PacketCapture, TCP_ACK, TCP_SYN, type ProbeResult } from "./capture.js";
import { startFlood, type FloodReport } from "./flood-sender.js";
import { KNOCKD_SEQUENCE } from "./knockd.js";
import { sampleProc, softnetDrops, type ProcSample } from "./proc.js";
import { sleep, summarize, type Summary } from "./stats.js";

export type FloodTarget = "tknock" | "knockd";

export type FloodResult = {
  target: FloodTarget;
  /** knockd only: the flood went to its 4 knock ports instead of the whole range (for tknock, any flood into the range is aimed). */
  aimed: boolean;
  flood: FloodReport & { pps: number };
  knocks: number;
  /** Prober connected within 3 s of the knock. */
  connected: number;
  /** The daemon reported the open (tknock: "opened" lines; knockd: "OPEN SESAME" lines). */
  daemonOpened: number;
  knockToConnectMs: Summary;
  /** Server-side capture: the host's first knock SYN to the service's SYN-ACK (client process start excluded). */
  firstKnockToConnectMs: Summary;
  /** tknock: the daemon's knockToOpenMs for the knocks made under flood. */
  knockToOpenMs?: Summary;
  /** CPU time during the part, ms: the daemon process, and (tknock) its tcpdump. */
  daemonCpuMs: number;
  captureCpuMs?: number;
  /** knockd: CPU of the command processes it ran (its children). */
  childCpuMs?: number;
  daemonPeakRssBytes: number;
  daemonRssAfterBytes: number;
  captureRssBytes?: number;
  /** tknock: packets the capture handed over, knock candidates parsed, and tcpdump's "dropped by kernel". */
  capturePackets?: number;
  captureKernelDrops?: number;
  /** Packets the kernel dropped before any capture could see them (all CPUs, whole machine). */
  softnetDrops: number;
  matcher?: Record<string, unknown>;
};

function cpuDelta(a: ProcSample | undefined, b: ProcSample | undefined): number {
  return a && b ? b.cpuMs - a.cpuMs : Number.NaN;
}

export async function benchFlood(
  bl: BenchLab,
  target: FloodTarget,
  o: {
    seconds: number;
    maxPackets: number;
    knocks: number;
    clientNames: readonly string[];
    aimed?: boolean;
    log: (l: string) => void;
    /** tknock's listener (default pcap). */
    listener?: BenchListener;
    /** Enrol only the knocking clients on the daemon (a server with as many clients as knock), not the whole lab's. */
    onlyKnockingClients?: boolean;
  },
): Promise<FloodResult> {
  const aimed = target === "knockd" && o.aimed === true;
  const serverHost = target === "tknock" ? "server" : "kserver";
  const serverAddr = target === "tknock" ? bl.serverAddr : bl.kserverAddr;
  const serverNs = bl.ns("server");
  // A fresh daemon: its VmHWM is then this part's peak.
  let daemonPid: number;
  let capturePid: number | undefined;
  let helperPids: number[] = [];
  let knockdOpenedBefore = 0;
  if (target === "tknock") {
    const d = await bl.startDaemon(o.listener ?? "pcap", o.onlyKnockingClients === true ? o.clientNames.slice(0, o.knocks) : undefined);
    daemonPid = d.pid;
    capturePid = d.tcpdumpPid(serverNs);
    helperPids = d.helperPids(serverNs);
  } else {
    const k = await bl.startKnockd();
    daemonPid = k.pid;
    knockdOpenedBefore = k.opened();
  }
  // Knocks come from 198.18.0.0/24, the flood from 198.18.1.0 and up: the kernel filter keeps only the knocks.
  const capture = await PacketCapture.start(
    bl.t.lab,
    serverHost,
    `tcp and ((src net 198.18.0.0/24 and dst host ${serverAddr} and dst portrange ${KNOCK_RANGE.min}-${KNOCK_RANGE.max} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or (src host ${serverAddr} and src port ${PROTECT_PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)))`,
  );
  const logFrom = bl.daemon?.logs.length ?? 0;
  await sleep(500);
  const before = sampleProc(daemonPid);
  const captureBefore = capturePid !== undefined ? sampleProc(capturePid) : undefined;
  const helpersBefore = helperPids.map((pid) => sampleProc(pid));
  const softnetBefore = softnetDrops();
  let peakRss = before?.rssBytes ?? 0;
  const sampler = setInterval(() => {
    const s = sampleProc(daemonPid);
    if (s && s.rssBytes > peakRss) peakRss = s.rssBytes;
  }, 200);

  const flood = startFlood(bl.t.lab, "other", {
    dst: serverAddr,
    maxPackets: o.maxPackets,
    maxSeconds: o.seconds,
    ...(aimed ? { ports: KNOCKD_SEQUENCE } : { portRange: KNOCK_RANGE }),
    sources: "random4",
    seed: target === "tknock" ? 11 : aimed ? 13 : 12,
  });
  const t0 = Date.now();
  const knockRuns: Promise<{ probe: ProbeResult; code: number; startMs: number; client: string | undefined; host: string }>[] = [];
  try {
    await sleep(500);
    const spacingMs = ((o.seconds - 1.5) * 1000) / o.knocks;
    for (let k = 0; k < o.knocks; k++) {
      const due = t0 + 500 + k * spacingMs;
      if (due > Date.now()) await sleep(due - Date.now());
      const host = await bl.takeHost(serverHost, 4000); // its prober is busy up to 3 s
      const client = target === "tknock" ? o.clientNames[k] : undefined;
      // Both daemons get their knocks from the same small client (knockd's `knock`); a node client starting on
      // this 2-core box during the flood would take CPU from the daemon it measures.
      const ports = target === "tknock" ? bl.currentPorts(client!) : KNOCKD_SEQUENCE;
      const argv = ["knock", "-d", "0", serverAddr, ...ports.map(String)];
      const probe = bl.probers.get(host)!.probe(serverAddr, PROTECT_PORT, 3000);
      const startMs = Date.now();
      knockRuns.push(
        bl.timed(host, argv).then(async (r) => {
          const p = await probe;
          bl.bookHost(serverHost, host, p.ok ? p.atMs : Date.now());
          return { probe: p, code: r.code, startMs, client, host };
        }),
      );
    }
    const results = await Promise.all(knockRuns);
    const report = await flood.done;
    await sleep(2000); // let the daemon drain what the capture buffered
    clearInterval(sampler);
    const after = sampleProc(daemonPid);
    const captureAfter = capturePid !== undefined ? sampleProc(capturePid) : undefined;
    const helpersCpuMs = helperPids.reduce((sum, pid, i) => sum + (cpuDelta(helpersBefore[i], sampleProc(pid)) || 0), 0);
    if (after && after.rssBytes > peakRss) peakRss = after.rssBytes;

    await capture.stop();
    const connected = results.filter((r) => r.probe.ok);
    const firstKnockToConnect: number[] = [];
    for (const r of connected) {
      const hostAddr = bl.t.lab.host(r.host).ipv4;
      const ev = capture.events.filter((e) => e.atMs >= r.startMs - 5 && e.atMs <= r.probe.atMs + 5);
      const first = ev.find((e) => e.src === hostAddr && (e.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN);
      const synAck = first && ev.find((e) => e.dst === hostAddr && e.srcPort === PROTECT_PORT && e.atMs >= first.atMs);
      if (first && synAck) firstKnockToConnect.push(synAck.atMs - first.atMs);
    }
    const out: FloodResult = {
      target,
      aimed,
      flood: { ...report, pps: report.sent / report.seconds },
      knocks: o.knocks,
      connected: connected.length,
      daemonOpened: 0,
      // From the knock command's start (process start included) to the prober's connect.
      knockToConnectMs: summarize(connected.map((r) => r.probe.atMs - r.startMs)),
      firstKnockToConnectMs: summarize(firstKnockToConnect),
      daemonCpuMs: cpuDelta(before, after),
      daemonPeakRssBytes: Math.max(peakRss, after?.hwmBytes ?? 0),
      daemonRssAfterBytes: after?.rssBytes ?? Number.NaN,
      softnetDrops: softnetDrops() - softnetBefore,
    };
    if (target === "tknock") {
      const d = bl.daemon!;
      const names = new Set(o.clientNames.slice(0, o.knocks));
      const opened = d.logs.slice(logFrom).filter((l) => l.msg === "opened" && names.has(String(l["client"])));
      out.daemonOpened = opened.length;
      out.knockToOpenMs = summarize(opened.map((l) => Number(l["knockToOpenMs"])));
      out.captureCpuMs = cpuDelta(captureBefore, captureAfter);
      out.captureRssBytes = captureAfter?.rssBytes ?? Number.NaN;
      const stats = await d.stats(serverNs);
      const listener = (stats?.["listener"] ?? {}) as Record<string, number>;
      if (listener["packets"] !== undefined) out.capturePackets = listener["packets"];
      if (listener["kernelDrops"] !== undefined) out.captureKernelDrops = listener["kernelDrops"];
      out.matcher = (stats?.["matcher"] ?? {}) as Record<string, unknown>;
    } else {
      out.daemonOpened = bl.knockd!.opened() - knockdOpenedBefore;
    }
    // The commands each daemon runs count as its CPU: knockd's nft per open, tknock's nft checks and ss polls.
    // and tknock's long-lived helpers (nft -i, nft monitor), which no wait() accounts for.
    out.childCpuMs = after && before ? after.childCpuMs - before.childCpuMs + helpersCpuMs : Number.NaN;
    o.log(
      `flood ${target}${target === "tknock" && o.listener !== undefined ? ` (${o.listener})` : ""}${aimed ? " (aimed at its knock ports)" : ""}: ${(out.flood.pps / 1000).toFixed(0)} k pkt/s for ${report.seconds.toFixed(1)} s; ${out.connected}/${o.knocks} connected, ${out.daemonOpened} opened; daemon CPU ${(out.daemonCpuMs / 1000).toFixed(2)} s, peak RSS ${(out.daemonPeakRssBytes / 1e6).toFixed(1)} MB` +
        (out.captureKernelDrops !== undefined ? `; capture drops ${out.captureKernelDrops}` : ""),
    );
    return out;
  } finally {
    clearInterval(sampler);
    if (flood.child.exitCode === null) flood.child.kill("SIGKILL");
    await Promise.allSettled(knockRuns);
    await capture.stop();
  }
}
