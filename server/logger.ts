import { pino, type Logger } from "pino";
import { formatLogLine, type LogFormat } from "./log-format.js";

export type { Logger };

/**
 * Keys that could hold a secret if a future log call passed a whole client record or profile: censored in every
 * format. Nothing logs them today; this keeps it that way.
 */
const REDACTED_KEYS = ["secret", "uri", "*.secret", "*.uri", "clients.*.secret"];

/**
 * JSON logs on stdout (systemd's journal keeps them); `format` journal puts each line's syslog priority in front
 * and pretty makes one readable line (server/log-format.ts).
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream, format: LogFormat = "json"): Logger {
  return pino(
    {
      level,
      base: { svc: "tknock-server" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_KEYS, censor: "[redacted]" },
      ...(format === "json" ? {} : { hooks: { streamWrite: (line: string) => formatLogLine(format, line) } }),
    },
    destination ?? process.stdout,
  );
}
