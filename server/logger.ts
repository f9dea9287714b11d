import { pino, type Logger } from "pino";

export type { Logger };

/** JSON logs on stdout (systemd's journal keeps them). Secrets are never passed to the logger. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { svc: "tknock-server" }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? process.stdout);
}
