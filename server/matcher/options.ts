import type { ServerConfig } from "../config/schema.js";
import { TknockError } from "../../src/errors.js";

/** The matcher's settings: the server config's own fields (documented there), so the two cannot drift apart. */
export type MatcherOptions = Pick<
  ServerConfig,
  "skewWindows" | "diagnosticWindows" | "knockTimeoutMs" | "retransmitMs" | "toleratedWrongKnocks" | "maxSources" | "bruteForce"
>;

/** Knobs that are not configuration; the defaults suit the daemon. */
export type MatcherTuning = {
  /** false re-derives a client's whole window at each step (only to check the incremental path in tests). */
  readonly incrementalTables?: boolean;
  /** Sequences one source may be part-way through at once; starts beyond it are dropped (counted). */
  readonly maxProgressPerSource?: number;
};

/** Far above any sane W, and far below what a progress entry can hold (source-table.ts progressWanted). */
const MAX_TOLERATED_WRONG_KNOCKS = 1000;

/** The matcher options of a server config (same field names). */
export function matcherOptionsFromConfig(c: ServerConfig): MatcherOptions {
  return pickOptions(c);
}

/** Only the matcher's fields: the daemon may pass its whole ServerConfig. */
export function pickOptions(c: MatcherOptions): MatcherOptions {
  return {
    skewWindows: c.skewWindows,
    diagnosticWindows: c.diagnosticWindows,
    knockTimeoutMs: c.knockTimeoutMs,
    retransmitMs: c.retransmitMs,
    toleratedWrongKnocks: c.toleratedWrongKnocks,
    maxSources: c.maxSources,
    bruteForce: { maxFailuresPerMinute: c.bruteForce.maxFailuresPerMinute, ban: c.bruteForce.ban, banSeconds: c.bruteForce.banSeconds },
  };
}

export function checkOptions(o: MatcherOptions): void {
  const bad: string[] = [];
  const int = (v: number, name: string, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) bad.push(`${name} ${v} must be an integer >= ${min}`);
  };
  int(o.skewWindows, "skewWindows", 0);
  int(o.diagnosticWindows, "diagnosticWindows", 0);
  int(o.knockTimeoutMs, "knockTimeoutMs", 0);
  int(o.retransmitMs, "retransmitMs", 0);
  int(o.toleratedWrongKnocks, "toleratedWrongKnocks", 0);
  if (o.toleratedWrongKnocks > MAX_TOLERATED_WRONG_KNOCKS)
    bad.push(`toleratedWrongKnocks ${o.toleratedWrongKnocks} must be at most ${MAX_TOLERATED_WRONG_KNOCKS}`);
  int(o.maxSources, "maxSources", 1);
  int(o.bruteForce.maxFailuresPerMinute, "bruteForce.maxFailuresPerMinute", 0);
  int(o.bruteForce.banSeconds, "bruteForce.banSeconds", 0);
  if (bad.length > 0) throw new TknockError("TKNOCK_INVALID_MATCHER_OPTIONS", `matcher options: ${bad.join("; ")}`);
}
