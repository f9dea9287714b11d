/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went: self time per function, and per file
 * or package. Used by `npm run bench -- --profile` for the daemon and by the matcher part's profile.
 */
import { readFileSync } from "node:fs";
import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";

type CpuProfile = {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; positionTicks?: { line: number; ticks: number }[] }[];
  samples: number[];
  timeDeltas: number[];
};

export type ProfileLine = { what: string; selfMs: number; percent: number };
export type ProfileSummary = {
  file: string;
  totalMs: number;
  functions: ProfileLine[];
  files: ProfileLine[];
  /** Source lines of the hottest JavaScript function, by share of its samples (compiled dist/ line numbers). */
  hotLines: { fn: string; lines: { line: number; percent: number; text: string }[] } | undefined;
};

function shortUrl(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 6);
  return url === "" ? "(native)" : url;
}

export function summarizeCpuProfile(file: string, top = 12): ProfileSummary {
  return summarizeProfile(JSON.parse(readFileSync(file, "utf8")) as CpuProfile, file, top);
}

/** Profiles a synchronous function in this process (node:inspector), at a 100 us sampling interval. */
export function profileSync(label: string, fn: () => void, top = 12): ProfileSummary {
  const session = new Session();
  session.connect();
  let profile: CpuProfile | undefined;
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 100 });
  session.post("Profiler.start");
  try {
    fn();
  } finally {
    // With a connected in-process session, post() calls back synchronously.
    session.post("Profiler.stop", (err, res) => {
      if (!err) profile = (res as { profile: CpuProfile }).profile;
    });
    session.disconnect();
  }
  if (!profile) throw new Error("profiler returned nothing");
  return summarizeProfile(profile, label, top);
}

function summarizeProfile(p: CpuProfile, file: string, top: number): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i] ?? 0;
    totalUs += d;
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + d);
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)?.callFrame;
    if (!cf) continue;
    // Idle time is the daemon waiting for packets, not work; "dispatch" is the in-process profiler's own session.
    if (cf.functionName === "(idle)" || (cf.functionName === "dispatch" && cf.url === "")) {
      totalUs -= us;
      continue;
    }
    const where = shortUrl(cf.url);
    const fn = `${cf.functionName || "(anonymous)"} ${where}${cf.url ? `:${cf.lineNumber + 1}` : ""}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    files.set(where, (files.get(where) ?? 0) + us);
  }
  const lines = (m: Map<string, number>): ProfileLine[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([what, us]) => ({ what, selfMs: Math.round(us / 100) / 10, percent: Math.round((1000 * us) / Math.max(1, totalUs)) / 10 }));
  return { file, totalMs: Math.round(totalUs / 1000), functions: lines(fns), files: lines(files), hotLines: hotLines(p, selfUs) };
}

function hotLines(p: CpuProfile, selfUs: Map<number, number>): ProfileSummary["hotLines"] {
  let best: { key: string; us: number } | undefined;
  const perFn = new Map<string, number>();
  for (const n of p.nodes) {
    if (!n.callFrame.url.startsWith("file://") || n.callFrame.url.includes("node_modules")) continue;
    const key = `${n.callFrame.functionName}|${n.callFrame.url}`;
    const us = (perFn.get(key) ?? 0) + (selfUs.get(n.id) ?? 0);
    perFn.set(key, us);
    if (!best || us > best.us) best = { key, us };
  }
  if (!best) return undefined;
  const ticks = new Map<number, number>();
  let url = "";
  for (const n of p.nodes) {
    if (`${n.callFrame.functionName}|${n.callFrame.url}` !== best.key) continue;
    url = n.callFrame.url;
    for (const t of n.positionTicks ?? []) ticks.set(t.line, (ticks.get(t.line) ?? 0) + t.ticks);
  }
  const total = [...ticks.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  let source: string[] = [];
  try {
    source = readFileSync(fileURLToPath(url), "utf8").split("\n");
  } catch {
    /* lines without text */
  }
  const [fnName] = best.key.split("|");
  return {
    fn: `${fnName ?? ""} ${shortUrl(url)}`,
    lines: [...ticks]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([line, n]) => ({ line, percent: Math.round((1000 * n) / total) / 10, text: (source[line - 1] ?? "").trim().slice(0, 100) })),
  };
}

export function formatProfile(s: ProfileSummary, title: string): string {
  const out = [`${title}: ${s.totalMs} ms of CPU (idle excluded), by self time`];
  for (const l of s.functions) out.push(`  ${l.percent.toFixed(1).padStart(5)}%  ${l.selfMs.toFixed(0).padStart(6)} ms  ${l.what}`);
  if (s.hotLines) {
    out.push(`  inside ${s.hotLines.fn}, by line:`);
    for (const l of s.hotLines.lines) out.push(`  ${l.percent.toFixed(1).padStart(5)}%  line ${String(l.line).padEnd(4)} ${l.text}`);
  }
  return out.join("\n");
}
