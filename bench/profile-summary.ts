/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went: self time per function, and per file
 * or package. Used by `npm run bench -- --profile` for the daemon and by the matcher part's profile.
 */
import { readFileSync } from "node:fs";

type CpuProfile = {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
};

export type ProfileLine = { what: string; selfMs: number; percent: number };
export type ProfileSummary = { file: string; totalMs: number; functions: ProfileLine[]; files: ProfileLine[] };

function shortUrl(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 6);
  return url === "" ? "(native)" : url;
}

export function summarizeCpuProfile(file: string, top = 12): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
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
    // Idle time is the daemon waiting for packets, not work.
    if (cf.functionName === "(idle)") {
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
  return { file, totalMs: Math.round(totalUs / 1000), functions: lines(fns), files: lines(files) };
}

export function formatProfile(s: ProfileSummary, title: string): string {
  const out = [`${title}: ${s.totalMs} ms of CPU (idle excluded), by self time`];
  for (const l of s.functions) out.push(`  ${l.percent.toFixed(1).padStart(5)}%  ${l.selfMs.toFixed(0).padStart(6)} ms  ${l.what}`);
  return out.join("\n");
}
