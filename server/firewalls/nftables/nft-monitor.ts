/**
 * A long-lived `nft monitor` child that reports changes to our table as they happen, so the daemon can repair
 * the gate within milliseconds of a `nft flush ruleset` rather than at its next 1 s check. It is an accelerator
 * only: if nft monitor dies it is restarted with backoff, and the periodic check covers the gap.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { FirewallLog } from "./nft-process.js";
import { NFT_FAMILY, nftArgv, PREFILTER_SETS, SET_GRANTS4, SET_GRANTS6, SET_HEARTBEAT } from "./ruleset.js";

/** Backoff between restarts of a dying nft monitor; reset once one has run for RESET_AFTER_MS. */
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const RESET_AFTER_MS = 10_000;

const CHILD_ENV = { ...process.env, HOME: "/nonexistent" };

/**
 * Whether one line of `nft monitor` output is a change to our table worth a check. Grants coming and going (our
 * own opens: add/delete element in the grant sets) are not: at a busy server they are most of the output; nor is
 * the prefilter's watch set, which the daemon replaces every window.
 */
export function isGateEvent(line: string, tableName: string): boolean {
  // nft monitor lost events (its netlink buffer overflowed): any of them may have been a change to our table.
  if (line.startsWith("# ERROR")) return true;
  const m = /^(\w+) (\w+) (\w+) (\S+)(?: (\S+))?/.exec(line.trim());
  if (!m) return false;
  const [, , object, family, table, name] = m;
  if (family !== NFT_FAMILY || table !== tableName) return false;
  return !(
    object === "element" &&
    (name === SET_GRANTS4 || name === SET_GRANTS6 || name === SET_HEARTBEAT || (PREFILTER_SETS as readonly (string | undefined)[]).includes(name))
  );
}

/** The beat number of a heartbeat's "add element" line for our table, else undefined. */
export function heartbeatOf(line: string, tableName: string): number | undefined {
  const m = /^add element (\w+) (\S+) (\S+) \{ (\d+) \}$/.exec(line.trim());
  if (!m || m[1] !== NFT_FAMILY || m[2] !== tableName || m[3] !== SET_HEARTBEAT) return undefined;
  return Number(m[4]);
}

export type NftMonitorOptions = {
  readonly nftCommand: readonly string[];
  readonly tableName: string;
  readonly log: FirewallLog;
  /** Each heartbeat the monitor reports (see heartbeatOf). */
  readonly onHeartbeat?: (beat: number) => void;
  /** Each time a monitor process starts (the first, and each restart). */
  readonly onStart?: () => void;
};

/** Runs `nft monitor` until the signal aborts, calling onChange for each line that is a change to our table. */
export function watchTable(opts: NftMonitorOptions, onChange: (line: string) => void, signal: AbortSignal): void {
  const { file, args } = nftArgv(opts.nftCommand, ["monitor"]);
  let backoffMs = FIRST_BACKOFF_MS;
  let timer: NodeJS.Timeout | undefined;

  const start = (): void => {
    if (signal.aborted) return;
    const startedAt = Date.now();
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env: CHILD_ENV });
    opts.onStart?.();
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (c: string) => {
      if (stderr.length < 4096) stderr += c;
    });
    child.stdout?.setEncoding("utf8");
    if (child.stdout) {
      createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", (line) => {
        if (isGateEvent(line, opts.tableName)) onChange(line);
        else if (opts.onHeartbeat) {
          const beat = heartbeatOf(line, opts.tableName);
          if (beat !== undefined) opts.onHeartbeat(beat);
        }
      });
    }
    const kill = (): void => {
      child.kill("SIGTERM");
    };
    signal.addEventListener("abort", kill, { once: true });
    let ended = false;
    const onEnd = (why: string): void => {
      if (ended) return;
      ended = true;
      signal.removeEventListener("abort", kill);
      if (signal.aborted) return;
      if (Date.now() - startedAt >= RESET_AFTER_MS) backoffMs = FIRST_BACKOFF_MS;
      opts.log.warn(
        { why, stderr: stderr.trim().slice(0, 600), restartInMs: backoffMs },
        "nft monitor ended; restarting it (the gate is still checked every second)",
      );
      timer = setTimeout(start, backoffMs);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    };
    child.once("error", (err: NodeJS.ErrnoException) => onEnd(err.code === "ENOENT" ? `${file} not found` : err.message));
    child.once("close", (code, sig) => onEnd(sig ?? `exit ${String(code)}`));
  };

  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  start();
}
