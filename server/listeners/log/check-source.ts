/**
 * The start-up check of the log listener: the chosen source can be read here. One TknockError naming what is
 * missing, before the daemon touches the firewall.
 */
import { execFile } from "node:child_process";
import { closeSync, constants, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ExitCode, TknockError } from "../../../src/errors.js";
import type { LogSource } from "./listener.js";

export type LogSourceCheckOptions = {
  readonly journalctlPath?: string;
  readonly kmsgPath?: string;
  readonly timeoutMs?: number;
};

export async function checkLogSource(source: LogSource, options: LogSourceCheckOptions = {}): Promise<void> {
  if (source === "journald") return checkJournalctl(options.journalctlPath ?? "journalctl", options.timeoutMs ?? 1500);
  if (source === "kmsg") {
    const path = options.kmsgPath ?? "/dev/kmsg";
    try {
      closeSync(openSync(path, constants.O_RDONLY | constants.O_NONBLOCK));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new TknockError(
        "TKNOCK_LOG_SOURCE",
        `cannot read ${path} (${code}): run as root (or with CAP_SYSLOG), or choose another logSource`,
        ExitCode.usage,
      );
    }
    return;
  }
  const path = source.slice("file:".length);
  const dir = dirname(path);
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new TknockError(
      "TKNOCK_LOG_SOURCE",
      `log file folder ${dir} does not exist: create it, or point logSource at the file your syslog writes kernel messages to`,
      ExitCode.usage,
    );
  }
}

function checkJournalctl(path: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(path, ["--version"], { timeout: timeoutMs }, (err) => {
      if (!err) return resolve();
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "not found" : err.killed ? `no answer within ${timeoutMs} ms` : (err.message.split("\n")[0] ?? "failed");
      reject(
        new TknockError(
          "TKNOCK_LOG_SOURCE",
          `journalctl ${why} (logSource "journald"): install systemd's journalctl, or set logSource to "kmsg" or "file:/var/log/kern.log"`,
          ExitCode.usage,
        ),
      );
    });
  });
}
