/**
 * A running systemd-journald for the log listener's journald source. A host that runs one (systemd) is used as it
 * is. Elsewhere (CI containers, this sandbox: no systemd as PID 1) the test starts the Debian binary itself; it
 * reads /dev/kmsg as it does under systemd and writes to /run/systemd/journal and /run/log/journal, which stop()
 * removes again when they were not there before. Nothing else on the host is touched.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";

export const JOURNALD_BINARY = "/lib/systemd/systemd-journald";
const SOCKET_DIR = "/run/systemd/journal";
const STORAGE_DIR = "/run/log/journal";

export type Journald = { readonly started: boolean; stop(): Promise<void> };

function running(): boolean {
  return spawnSync("pgrep", ["-x", "systemd-journal"], { encoding: "utf8" }).stdout.trim() !== "" && existsSync(`${SOCKET_DIR}/socket`);
}

export async function ensureJournald(): Promise<Journald> {
  if (running()) return { started: false, stop: async () => {} };
  if (!existsSync(JOURNALD_BINARY)) throw new Error(`${JOURNALD_BINARY} not found: apt-get install systemd (the journald source's lab test needs it)`);
  const hadSockets = existsSync(SOCKET_DIR);
  const hadStorage = existsSync(STORAGE_DIR);
  const child: ChildProcess = spawn(JOURNALD_BINARY, [], { stdio: "ignore" });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    if (!hadSockets) rmSync(SOCKET_DIR, { recursive: true, force: true });
    if (!hadStorage) rmSync(STORAGE_DIR, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const r = spawnSync("journalctl", ["-k", "-n", "1", "--no-pager", "-q"], { encoding: "utf8" });
    if (existsSync(`${SOCKET_DIR}/socket`) && r.status === 0 && r.stdout.trim() !== "") return { started: true, stop };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error("systemd-journald started but journalctl -k shows no kernel message");
}
