/**
 * The replay record: refused knocks (replays, clock skew, lockouts) and brute-force sources, one JSON object per
 * line in <stateDir>/replays.jsonl. Append-only and bounded: past maxBytes the file is renamed to .1 (.1 to .2,
 * ... up to keepFiles), so a flood costs at most maxBytes * (keepFiles + 1) of disk; a per-second cap keeps a
 * flood of refusals from costing more than a few writes per millisecond. Records carry names, steps and ports
 * (already seen on the wire), never a secret.
 */
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { fsError } from "../src/fs-errors.js";
import type { Decision } from "./matcher/decision.js";

/** SPA refusals are kinds of their own, prefixed `spa-` (server/spa/decision.ts says what each means). */
export const SPA_REPLAY_KINDS = ["spa-replay", "spa-skew", "spa-bad-tag", "spa-malformed", "spa-nat", "spa-address", "spa-ports", "spa-full"] as const;
export type ReplayKind = "replay" | "skew" | "lockout" | "bruteforce" | (typeof SPA_REPLAY_KINDS)[number];

export type ReplayRecord = {
  /** ISO 8601. */
  readonly time: string;
  readonly source: string;
  readonly kind: ReplayKind;
  /** replay, skew, lockout: the client whose sequence it was. */
  readonly client?: string;
  readonly step?: number;
  readonly ports?: readonly number[];
  /** skew: x - T in windows; positive = the client's clock is ahead. */
  readonly offsetWindows?: number;
  /** bruteforce: failed sequences in the minute. */
  readonly failures?: number;
  /** SPA: the address the packet asked to open. */
  readonly address?: string;
  /** Records dropped by the rate cap just before this one. */
  readonly suppressedBefore?: number;
};

export type ReplayLogOptions = {
  readonly maxBytes: number;
  readonly keepFiles: number;
  /** Records written per second at most; the rest are counted (default 1000). */
  readonly maxRecordsPerSecond?: number;
  /**
   * Told about failed writes (full disk, read-only or removed state dir): at the first failure, then at most once
   * per writeErrorReportMs with how many records were lost since the last report, so a flood of refusals on a
   * full disk costs one log line a minute, not one per packet.
   */
  readonly onWriteError?: (report: ReplayWriteErrorReport) => void;
  /** Default 60 000. */
  readonly writeErrorReportMs?: number;
};

export type ReplayWriteErrorReport = {
  readonly path: string;
  /** The last error's message (an errno message with the path: no secret can be in it). */
  readonly error: string;
  /** Records lost since the previous report, this one included. */
  readonly lost: number;
};

export type ReplayLogStats = {
  written: number;
  suppressed: number;
  rotations: number;
  writeErrors: number;
  /** Malformed lines skipped by the last read(). */
  malformedRead: number;
};

const KINDS: ReadonlySet<string> = new Set<ReplayKind>(["replay", "skew", "lockout", "bruteforce", ...SPA_REPLAY_KINDS]);
const DEFAULT_MAX_PER_SECOND = 1000;

/** The record of a refusal or brute-force decision; undefined for the other kinds. */
export function replayRecordOf(d: Decision, atMs: number): ReplayRecord | undefined {
  const time = new Date(atMs).toISOString();
  if (d.kind === "refuse") {
    return {
      time,
      source: d.src,
      kind: d.reason,
      client: d.client,
      step: d.step,
      ports: d.ports,
      ...(d.offsetWindows !== undefined ? { offsetWindows: d.offsetWindows } : {}),
    };
  }
  if (d.kind === "bruteforce") return { time, source: d.src, kind: "bruteforce", failures: d.failures };
  return undefined;
}

export class ReplayLog {
  private fd: number | undefined;
  private size = 0;
  private readonly maxPerSecond: number;
  private secondStartMs = Number.NEGATIVE_INFINITY;
  private inSecond = 0;
  private pendingSuppressed = 0;
  private lastErrorReportMs = Number.NEGATIVE_INFINITY;
  private unreportedErrors = 0;
  private readonly counters: ReplayLogStats = { written: 0, suppressed: 0, rotations: 0, writeErrors: 0, malformedRead: 0 };
  /** Message of the last write error, for the daemon's log (no secret can be in it). */
  lastError: string | undefined;

  /** Opens nothing until the first append, so a reader (`tknock-server replays`) never creates files. */
  constructor(
    readonly path: string,
    private readonly options: ReplayLogOptions,
  ) {
    this.maxPerSecond = options.maxRecordsPerSecond ?? DEFAULT_MAX_PER_SECOND;
  }

  /**
   * Appends one record (a synchronous write: nothing is lost when the daemon is killed afterwards). Never
   * throws: a write error is counted (stats().writeErrors, lastError) and the record dropped. Returns whether
   * the record was written.
   */
  append(record: ReplayRecord): boolean {
    const atMs = Date.parse(record.time);
    // The cap runs on the records' own clock (the daemon's), so the log reads no clock itself.
    if (Number.isFinite(atMs) && (atMs < this.secondStartMs || atMs - this.secondStartMs >= 1000)) {
      this.secondStartMs = atMs;
      this.inSecond = 0;
    }
    if (this.inSecond >= this.maxPerSecond) {
      this.counters.suppressed++;
      this.pendingSuppressed++;
      return false;
    }
    this.inSecond++;
    const full = this.pendingSuppressed > 0 ? { ...record, suppressedBefore: this.pendingSuppressed } : record;
    const line = `${JSON.stringify(full)}\n`;
    try {
      const bytes = Buffer.byteLength(line);
      this.open();
      if (this.size > 0 && this.size + bytes > this.options.maxBytes) this.rotate();
      writeSync(this.open(), line);
      this.size += bytes;
      this.counters.written++;
      this.pendingSuppressed = 0;
      return true;
    } catch (err) {
      this.counters.writeErrors++;
      this.lastError = err instanceof Error ? err.message : String(err);
      this.closeFd();
      this.reportWriteError(Number.isFinite(atMs) ? atMs : this.lastErrorReportMs);
      return false;
    }
  }

  /** Records at or after sinceMs from the rotated files and the current one, oldest first. */
  read(opts: { sinceMs?: number } = {}): ReplayRecord[] {
    const { records, malformed } = readReplayRecords(this.path, this.options.keepFiles, opts);
    this.counters.malformedRead = malformed;
    return records;
  }

  stats(): ReplayLogStats {
    return { ...this.counters };
  }

  close(): void {
    this.closeFd();
  }

  private reportWriteError(atMs: number): void {
    this.unreportedErrors++;
    const interval = this.options.writeErrorReportMs ?? 60_000;
    const onWriteError = this.options.onWriteError;
    if (onWriteError === undefined || (atMs - this.lastErrorReportMs < interval && atMs >= this.lastErrorReportMs)) return;
    this.lastErrorReportMs = atMs;
    const lost = this.unreportedErrors;
    this.unreportedErrors = 0;
    try {
      onWriteError({ path: this.path, error: this.lastError ?? "error", lost });
    } catch {
      // A reporter that fails must not turn a lost record into a crash: append never throws.
    }
  }

  private open(): number {
    if (this.fd === undefined) {
      this.fd = openSync(this.path, "a", 0o600);
      this.size = fstatSync(this.fd).size;
    }
    return this.fd;
  }

  /** replays.jsonl -> .1 -> .2 ... -> .keepFiles (the oldest falls off), then a fresh file. */
  private rotate(): void {
    this.closeFd();
    const keep = this.options.keepFiles;
    rmSync(`${this.path}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) renameIfExists(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    renameIfExists(this.path, `${this.path}.1`);
    this.counters.rotations++;
    this.open();
  }

  private closeFd(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    this.size = 0;
    try {
      closeSync(fd);
    } catch {
      // Already closed or invalid: nothing left to release.
    }
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/**
 * Reads <path>.<keepFiles> ... <path>.1 and <path>, oldest first, keeping records with time >= sinceMs.
 * Malformed lines (garbage, a line cut by a crash, an unknown kind) are skipped and counted. Files are read in
 * chunks, so a large rotation size never needs one huge string.
 */
export function readReplayRecords(path: string, keepFiles: number, opts: { sinceMs?: number } = {}): { records: ReplayRecord[]; malformed: number } {
  const sinceMs = opts.sinceMs ?? Number.NEGATIVE_INFINITY;
  const records: ReplayRecord[] = [];
  let malformed = 0;
  const files: string[] = [];
  for (let i = keepFiles; i >= 1; i--) files.push(`${path}.${i}`);
  files.push(path);
  for (const file of files) {
    forEachLine(file, (line) => {
      if (line.trim() === "") return;
      const r = parseRecord(line);
      if (r === undefined) {
        malformed++;
        return;
      }
      if (Date.parse(r.time) >= sinceMs) records.push(r);
    });
  }
  return { records, malformed };
}

function forEachLine(file: string, onLine: (line: string) => void): void {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw fsError(err, "read", `replay record ${file}`);
  }
  try {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    let carry = Buffer.alloc(0);
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      let data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
        onLine(data.toString("utf8", start, nl));
        start = nl + 1;
      }
      data = data.subarray(start);
      carry = Buffer.from(data); // copy: chunk is reused by the next read
    }
    if (carry.length > 0) onLine(carry.toString("utf8"));
  } finally {
    closeSync(fd);
  }
}

function parseRecord(line: string): ReplayRecord | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  const { time, source, kind } = o;
  if (typeof time !== "string" || !Number.isFinite(Date.parse(time))) return undefined;
  if (typeof source !== "string" || typeof kind !== "string" || !KINDS.has(kind)) return undefined;
  const optional = (key: string, ok: (v: unknown) => boolean): boolean => o[key] === undefined || ok(o[key]);
  const isInt = (v: unknown): boolean => Number.isSafeInteger(v);
  if (
    !optional("client", (v) => typeof v === "string") ||
    !optional("step", isInt) ||
    !optional("ports", (v) => Array.isArray(v) && v.every(isInt)) ||
    !optional("offsetWindows", isInt) ||
    !optional("failures", isInt) ||
    !optional("suppressedBefore", isInt) ||
    !optional("address", (v) => typeof v === "string")
  ) {
    return undefined;
  }
  return o as ReplayRecord;
}
