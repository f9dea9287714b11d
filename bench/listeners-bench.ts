/**
 * Part "listeners" (issue 12): the same daemon with each listener, in one lab and one run.
 *
 * Reaction: for pcap, log (source kmsg) and nflog in turn, a fresh daemon and N knocks sent by knockd's
 * `knock -d 0` (the "tknock-knock" mode of the latency part), timed on the server's wire: last knock SYN -> the
 * service's SYN-ACK. The listeners run one after the other (one daemon owns the gate at a time), so load drift
 * between them is not cancelled out the way the latency part's interleaving does it.
 * Flood: the flood part's random flood into the knock range, against the nflog daemon, the pcap daemon and knockd,
 * the same seconds and packet cap for each, so the CPU ratio compares one run's numbers.
 *
 * The log listener in a namespace needs net.netfilter.nf_log_all_netns=1: set only for its runs and restored
 * after them, also when they fail and when the process exits (Ctrl-C: the lab's signal hook calls process.exit).
 */
import { spawnSync } from "node:child_process";
import type { BenchLab, BenchListener } from "./bench-lab.js";
import { benchFlood, type FloodResult } from "./flood-bench.js";
import { benchLatency, latencyClientNames, type ModeSummary } from "./latency-bench.js";

export const LISTENERS: readonly BenchListener[] = ["pcap", "log", "nflog"];

export type ListenersResult = {
  n: number;
  /** Per listener: the "tknock-knock" latency summary (lastKnockToConnectMs is the server's reaction). */
  reaction: Partial<Record<BenchListener, ModeSummary>>;
  flood: { nflog?: FloodResult; pcap?: FloodResult; knockd?: FloodResult };
  errors: string[];
};

const SYSCTL = "net.netfilter.nf_log_all_netns";

function sysctl(value?: string): string {
  const r = spawnSync("sysctl", value === undefined ? ["-n", SYSCTL] : ["-q", "-w", `${SYSCTL}=${value}`], { encoding: "utf8", timeout: 5000 });
  if (r.status !== 0) throw new Error(`sysctl ${SYSCTL} failed: ${(r.stderr ?? "").trim()}`);
  return r.stdout.trim();
}

/** Runs fn with nf_log_all_netns=1 and puts the old value back after it, on every path out. */
async function withNfLogAllNetns<T>(log: (l: string) => void, fn: () => Promise<T>): Promise<T> {
  const old = sysctl();
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    try {
      sysctl(old);
    } catch (err) {
      process.stderr.write(`bench: could not restore ${SYSCTL}=${old}: ${err instanceof Error ? err.message : String(err)}; run: sysctl -w ${SYSCTL}=${old}\n`);
    }
  };
  // First in line on a signal: the lab's own hook exits the process right after it.
  process.once("exit", restore);
  process.prependOnceListener("SIGINT", restore);
  process.prependOnceListener("SIGTERM", restore);
  try {
    if (old !== "1") {
      log(`listeners: ${SYSCTL}=1 for the log listener (was ${old}; restored after)`);
      sysctl("1");
    }
    return await fn();
  } finally {
    restore();
    process.off("exit", restore);
    process.off("SIGINT", restore);
    process.off("SIGTERM", restore);
  }
}

/** Every client name the part uses (to enrol before any daemon starts); each knocks once. */
export function listenersClientNames(n: number, floodKnocks: number): string[] {
  return [...LISTENERS.flatMap((l) => latencyClientNames(n, `${l}-`)["tknock-knock"]), ...floodNames(floodKnocks, "nflog"), ...floodNames(floodKnocks, "pcap")];
}

function floodNames(knocks: number, listener: "nflog" | "pcap"): string[] {
  const prefix = listener === "nflog" ? "lnflood" : "lpflood";
  return Array.from({ length: knocks }, (_, i) => `${prefix}${i}`);
}

export async function benchListeners(
  bl: BenchLab,
  o: { n: number; flood: { seconds: number; maxPackets: number; knocks: number } | undefined; knockd: boolean; log: (l: string) => void },
): Promise<ListenersResult> {
  const out: ListenersResult = { n: o.n, reaction: {}, flood: {}, errors: [] };
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      out.errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      o.log(`listeners: ${what} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  };
  await bl.knockd?.stop();
  for (const listener of LISTENERS) {
    await attempt(`reaction ${listener}`, async () => {
      const run = async (): Promise<void> => {
        await bl.startDaemon(listener);
        o.log(`listeners: reaction, listener ${listener}, N = ${o.n}`);
        const r = await benchLatency(bl, {
          n: o.n,
          tknock: true,
          knockd: false,
          knockClient: true,
          only: ["tknock-knock"],
          names: latencyClientNames(o.n, `${listener}-`),
          log: o.log,
        });
        const s = r.modes["tknock-knock"];
        if (s) out.reaction[listener] = s;
        await bl.daemon?.stop();
      };
      await (listener === "log" ? withNfLogAllNetns(o.log, run) : run());
    });
  }
  const f = o.flood;
  if (f) {
    const common = { seconds: f.seconds, maxPackets: f.maxPackets, knocks: f.knocks, log: o.log };
    for (const listener of ["nflog", "pcap"] as const) {
      await attempt(`flood ${listener}`, async () => {
        o.log(`listeners: flood, listener ${listener}, ${f.seconds} s`);
        out.flood[listener] = await benchFlood(bl, "tknock", { ...common, listener, clientNames: floodNames(f.knocks, listener), onlyKnockingClients: true });
        await bl.daemon?.stop();
      });
    }
    if (o.knockd) {
      await attempt("flood knockd", async () => {
        o.log(`listeners: flood, knockd, ${f.seconds} s`);
        out.flood.knockd = await benchFlood(bl, "knockd", { ...common, clientNames: [] });
        await bl.knockd?.stop();
      });
    }
  }
  return out;
}
