/**
 * Process facts from /proc. Network namespaces share the host's pid namespace, so a daemon started with
 * `ip netns exec` is visible here under its own pid.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Clock ticks per second for /proc/PID/stat times (sysconf(_SC_CLK_TCK); 100 on Linux). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export type ProcSample = {
  /** utime + stime of the process itself, in ms. */
  cpuMs: number;
  /** cutime + cstime: CPU of children it has waited for (knockd's command runs), in ms. */
  childCpuMs: number;
  rssBytes: number;
  /** Peak RSS over the process's life (VmHWM). */
  hwmBytes: number;
};

function statFields(pid: number): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  // comm (field 2) may contain spaces: split after its closing parenthesis.
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const f = statFields(pid); // f[0] is field 3 (state)
    const ticks = (i: number): number => Number(f[i - 3]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
    return {
      cpuMs: ((ticks(14) + ticks(15)) * 1000) / CLK_TCK,
      childCpuMs: ((ticks(16) + ticks(17)) * 1000) / CLK_TCK,
      rssBytes: kib("VmRSS"),
      hwmBytes: kib("VmHWM"),
    };
  } catch {
    return undefined;
  }
}

export function parentPid(pid: number): number | undefined {
  try {
    return Number(statFields(pid)[1]);
  } catch {
    return undefined;
  }
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((s) => s !== "");
  } catch {
    return [];
  }
}

/** Pids of the processes inside a network namespace (`ip netns pids`). */
export function pidsInNamespace(ns: string): number[] {
  try {
    return execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The first process in the namespace whose command line satisfies the predicate. */
export function findProcess(ns: string, match: (argv: string[], pid: number) => boolean): number | undefined {
  return pidsInNamespace(ns).find((pid) => match(cmdline(pid), pid));
}

/** Packets the kernel dropped on the way in (backlog full), summed over CPUs: /proc/net/softnet_stat column 2. */
export function softnetDrops(): number {
  try {
    return readFileSync("/proc/net/softnet_stat", "utf8")
      .trim()
      .split("\n")
      .reduce((sum, line) => sum + parseInt(line.split(/\s+/)[1] ?? "0", 16), 0);
  } catch {
    return Number.NaN;
  }
}

export function loadAverage(): number[] {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

function cpuTimes(): { total: number; idle: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0) };
}

/** Share of all CPUs busy over the next `ms` (whole machine): whether others were running when the bench began. */
export async function cpuBusyPercent(ms: number): Promise<number> {
  try {
    const a = cpuTimes();
    await new Promise((r) => setTimeout(r, ms));
    const b = cpuTimes();
    const total = b.total - a.total;
    return total > 0 ? Math.round((100 * (total - (b.idle - a.idle))) / total) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
