/**
 * How the daemon's log lines look. pino writes one JSON object per line; this decides what reaches stdout:
 *   json:    the line as pino wrote it (the default: a file, a pipe, a log shipper);
 *   journal: the same line behind its syslog priority, `<4>{...}` for a warning: systemd-journald reads the
 *            prefix (SyslogLevelPrefix=, on by default), so `journalctl -p warning` can filter;
 *   pretty:  one readable line for a terminal: `12:00:01.234 WARN  knock refused reason=replay client=alice`.
 * Secrets never reach the logger (the daemon passes none, and logger.ts redacts the keys that could hold one);
 * the formats only rearrange what pino wrote.
 */
import { fstatSync } from "node:fs";

export const LOG_FORMATS = ["json", "journal", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** pino's numeric levels and their syslog(3) priority (RFC 5424 severity). */
const SYSLOG_PRIORITY: Readonly<Record<number, number>> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };
const LEVEL_NAME: Readonly<Record<number, string>> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

/** The syslog priority of a pino level number; an unknown level counts as a notice (5). */
export function syslogPriority(level: number): number {
  return SYSLOG_PRIORITY[level] ?? 5;
}

/**
 * The format when none is asked for: journal when stdout is the journal's stream. systemd sets JOURNAL_STREAM
 * to "DEV:INODE" of that stream; a process whose stdout was redirected elsewhere inherits the variable, so the
 * device and inode are compared with stdout's (systemd.exec(5) "$JOURNAL_STREAM").
 */
export function defaultLogFormat(journalStream: string | undefined, stdout: { dev: number; ino: number } | undefined): LogFormat {
  if (journalStream === undefined || stdout === undefined) return "json";
  const m = /^(\d+):(\d+)$/.exec(journalStream.trim());
  return m !== null && Number(m[1]) === stdout.dev && Number(m[2]) === stdout.ino ? "journal" : "json";
}

/** defaultLogFormat for this process, whose log goes to fd (stdout). */
export function processLogFormat(env: Readonly<Record<string, string | undefined>>, fd = 1): LogFormat {
  let stdout: { dev: number; ino: number } | undefined;
  try {
    stdout = fstatSync(fd);
  } catch {
    stdout = undefined;
  }
  return defaultLogFormat(env["JOURNAL_STREAM"], stdout);
}

/** pino puts the level first in every line it writes. */
const LEVEL_AT_START = /^\{"level":(\d+)/;

/** One pino line (with its newline) in the given format. */
export function formatLogLine(format: LogFormat, line: string): string {
  if (format === "json") return line;
  if (format === "journal") {
    const level = LEVEL_AT_START.exec(line);
    return `<${syslogPriority(level === null ? 0 : Number(level[1]))}>${line}`;
  }
  return prettyLine(line);
}

/** Fields shown in the line's head rather than as key=value. */
const HEAD_FIELDS = new Set(["level", "time", "msg", "svc", "pid", "hostname"]);

function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof o["level"] === "number" ? (LEVEL_NAME[o["level"]] ?? String(o["level"])) : "?";
  const time = typeof o["time"] === "string" ? o["time"].slice(11, 23) : "";
  const fields = Object.entries(o)
    .filter(([k]) => !HEAD_FIELDS.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" && !/[\s"=]/.test(v) && v !== "" ? v : JSON.stringify(v)}`);
  const msg = typeof o["msg"] === "string" ? o["msg"] : "";
  return `${[time, level.padEnd(5), msg, ...fields].filter((s) => s !== "").join(" ")}\n`;
}
