/**
 * Part 4: daemon memory after 1M distinct sources each sent one packet into the knock range.
 *
 * 198.18.0.0/15 holds only 131072 addresses, so the sources are IPv6: fd18:18::1:0:0:0 + i (inside the lab's
 * fd18:18::/64), one SYN each. Worst case on purpose: every packet goes to the FIRST port of some live sequence
 * (any enrolled client, steps T-10..T+10), so every source makes the matcher create per-source state; a random
 * port would mostly be ignored without any state. The matcher's table is bounded (maxSources, default 100k,
 * CLOCK eviction), which is what this part checks. Sent at a fixed rate the daemon keeps up with, so that the
 * sources really reach the matcher (the capture's packet and drop counters are reported to prove it).
 */
import { clientProfile } from "../server/config/schema.js";
import { deriveSequence } from "../src/protocol/derive.js";
import { stepAt } from "../src/protocol/window.js";
import type { BenchLab } from "./bench-lab.js";
import { startFlood, type FloodReport } from "./flood-sender.js";
import { sampleProc } from "./proc.js";
import { sleep } from "./stats.js";

export type MemoryResult = {
  sources: number;
  flood: FloodReport & { pps: number };
  targetPorts: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  peakRssBytes: number;
  capturePackets?: number;
  captureKernelDrops?: number;
  matcherSources?: number;
  matcherEvictions?: number;
  maxSources?: number;
  daemonCpuMs: number;
};

/** First ports of every sequence the daemon holds (steps T-D..T+D of every enrolled client). */
function liveFirstPorts(bl: BenchLab, spanWindows: number): number[] {
  const ports = new Set<number>();
  for (const { name, record } of bl.enrolled) {
    const profile = clientProfile(name, record);
    const t = stepAt(Date.now(), profile.periodSeconds);
    for (let s = t - spanWindows; s <= t + spanWindows; s++) ports.add(deriveSequence(profile, s)[0]!);
  }
  return [...ports];
}

export async function benchMemory(bl: BenchLab, o: { sources: number; rate: number; log: (l: string) => void }): Promise<MemoryResult> {
  const d = await bl.startDaemon();
  const serverNs = bl.ns("server");
  await sleep(1000);
  const before = sampleProc(d.pid);
  const ports = liveFirstPorts(bl, 10);
  const maxSeconds = Math.min(120, Math.ceil(o.sources / o.rate) + 30);
  let peak = before?.rssBytes ?? 0;
  const sampler = setInterval(() => {
    const s = sampleProc(d.pid);
    if (s && s.rssBytes > peak) peak = s.rssBytes;
  }, 250);
  const flood = startFlood(bl.t.lab, "other", {
    dst: bl.t.lab.host("server").ipv6,
    maxPackets: o.sources,
    maxSeconds,
    rate: o.rate,
    ports,
    sources: "seq6",
  });
  try {
    const report = await flood.done;
    await sleep(2000);
    clearInterval(sampler);
    const stats = await d.stats(serverNs);
    const after = sampleProc(d.pid);
    const listener = (stats?.["listener"] ?? {}) as Record<string, number>;
    const matcher = (stats?.["matcher"] ?? {}) as Record<string, number>;
    const out: MemoryResult = {
      sources: report.sent,
      flood: { ...report, pps: report.sent / report.seconds },
      targetPorts: ports.length,
      rssBeforeBytes: before?.rssBytes ?? Number.NaN,
      rssAfterBytes: after?.rssBytes ?? Number.NaN,
      peakRssBytes: Math.max(peak, after?.hwmBytes ?? 0),
      daemonCpuMs: before && after ? after.cpuMs - before.cpuMs : Number.NaN,
    };
    if (listener["packets"] !== undefined) out.capturePackets = listener["packets"];
    if (listener["kernelDrops"] !== undefined) out.captureKernelDrops = listener["kernelDrops"];
    if (matcher["sources"] !== undefined) out.matcherSources = matcher["sources"];
    if (matcher["evictions"] !== undefined) out.matcherEvictions = matcher["evictions"];
    if (matcher["maxSources"] !== undefined) out.maxSources = matcher["maxSources"];
    o.log(
      `memory: ${report.sent} IPv6 sources at ${(out.flood.pps / 1000).toFixed(0)} k pkt/s; captured ${out.capturePackets ?? "?"}, drops ${out.captureKernelDrops ?? "?"}; RSS ${(out.rssBeforeBytes / 1e6).toFixed(1)} -> ${(out.rssAfterBytes / 1e6).toFixed(1)} MB (peak ${(out.peakRssBytes / 1e6).toFixed(1)})`,
    );
    return out;
  } finally {
    clearInterval(sampler);
    if (flood.child.exitCode === null) flood.child.kill("SIGKILL");
  }
}
