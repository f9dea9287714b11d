/**
 * The flood sender (bench/flood.c): compiled with cc at bench time, run inside a lab host. Every run is bounded
 * by a packet count and a duration, and the sender itself refuses destinations outside the lab prefixes.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Lab } from "../lab/lab.js";
import { REPO_ROOT } from "../lab/tknock-lab.js";

export const FLOOD_SOURCE = join(REPO_ROOT, "bench/flood.c");
export const FLOOD_BINARY = join(REPO_ROOT, "dist/bench/tknock-flood");

/** Compiles the sender unless an up-to-date binary exists. Throws with cc's message on failure. */
export function buildFloodSender(): string {
  const fresh = existsSync(FLOOD_BINARY) && statSync(FLOOD_BINARY).mtimeMs >= statSync(FLOOD_SOURCE).mtimeMs;
  if (!fresh) {
    mkdirSync(dirname(FLOOD_BINARY), { recursive: true });
    execFileSync("cc", ["-O2", "-Wall", "-o", FLOOD_BINARY, FLOOD_SOURCE], { stdio: ["ignore", "inherit", "inherit"] });
  }
  return FLOOD_BINARY;
}

export type FloodOptions = {
  readonly dst: string;
  readonly maxPackets: number;
  readonly maxSeconds: number;
  /** Packets per second; 0 or absent: as fast as the sender can. */
  readonly rate?: number;
  readonly portRange?: { readonly min: number; readonly max: number };
  /** Destination ports to pick from (instead of a range). */
  readonly ports?: readonly number[];
  /** fixed4: every packet from `source` (spoofing one lab host). */
  readonly sources: "random4" | "seq4" | "seq6" | "fixed4";
  readonly source?: string;
  /** Ports in ascending order through portRange (a sweep), instead of random ones. */
  readonly ascending?: boolean;
  /** UDP datagrams with this many bytes of random payload (first byte 0x01, SPA's version) instead of SYNs. */
  readonly udpPayloadBytes?: number;
  readonly seed?: number;
};

export type FloodReport = { sent: number; errors: number; seconds: number };

/** stop(): ends the run early (SIGTERM); `done` still resolves with the report. */
export type RunningFlood = { readonly child: ChildProcess; readonly done: Promise<FloodReport>; stop(): Promise<FloodReport> };

export function startFlood(lab: Lab, host: string, o: FloodOptions): RunningFlood {
  const argv = [FLOOD_BINARY, "-d", o.dst, "-c", String(o.maxPackets), "-t", String(o.maxSeconds), "-s", o.sources, "-S", String(o.seed ?? 1)];
  if (o.rate !== undefined && o.rate > 0) argv.push("-r", String(o.rate));
  if (o.source !== undefined) argv.push("-a", o.source);
  if (o.ascending === true) argv.push("-o");
  if (o.udpPayloadBytes !== undefined) argv.push("-u", String(o.udpPayloadBytes));
  if (o.ports !== undefined) argv.push("-P", o.ports.join(","));
  else if (o.portRange !== undefined) argv.push("-p", `${o.portRange.min}-${o.portRange.max}`);
  const child = lab.spawn(host, argv);
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (t: string) => (out += t));
  child.stderr?.setEncoding("utf8").on("data", (t: string) => (err += t));
  const done = new Promise<FloodReport>((resolve, reject) => {
    child.once("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line) as FloodReport);
      } catch {
        reject(new Error(`flood sender failed (${code}): ${err.trim() || out.trim()}`));
      }
    });
  });
  done.catch(() => undefined);
  return {
    child,
    done,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return done;
    },
  };
}
