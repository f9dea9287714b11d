/**
 * fwknop (Debian packages fwknop-server / fwknop-client 2.6) on its own lab host, protecting the same port as
 * tknock the way its documentation suggests: fwknopd sniffs UDP port 62201 with libpcap (its default filter and
 * loop settings), checks Rijndael + HMAC-SHA256 SPA packets against access.conf, and inserts an iptables ACCEPT
 * for the source into its FWKNOP_INPUT chain; a DROP for the protected port (and for 62201, so nothing answers)
 * sits below it in INPUT. Never installed by the bench: it says how to, and skips fwknop's rows.
 */
import { randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab } from "../lab/lab.js";
import { sleep } from "./stats.js";

export const FWKNOP_PORT = 62201;
export const FWKNOP_INSTALL_HINT = "apt-get install -y fwknop-server fwknop-client";

export function fwknopInstalled(): boolean {
  return existsSync("/usr/sbin/fwknopd") && existsSync("/usr/bin/fwknop");
}

export type FwknopKeys = { readonly rijndaelBase64: string; readonly hmacBase64: string };

export function newFwknopKeys(): FwknopKeys {
  return { rijndaelBase64: randomBytes(32).toString("base64"), hmacBase64: randomBytes(64).toString("base64") };
}

/** iptables in the server's namespace: established traffic accepted, the protected port and 62201 dropped. */
export function fwknopGateArgvs(protectPort: number): string[][] {
  return [
    ["iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
    ["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", String(protectPort), "-j", "DROP"],
    ["iptables", "-A", "INPUT", "-p", "udp", "--dport", String(FWKNOP_PORT), "-j", "DROP"],
  ];
}

/** The fwknop client's command line: open tcp/PORT for `allowIp` on `server` (no rc file, nothing saved). */
export function fwknopClientArgv(server: string, allowIp: string, protectPort: number, keys: FwknopKeys): string[] {
  return [
    "fwknop",
    "-A",
    `tcp/${protectPort}`,
    "-a",
    allowIp,
    "-D",
    server,
    "--use-hmac",
    "--key-base64-rijndael",
    keys.rijndaelBase64,
    "--key-base64-hmac",
    keys.hmacBase64,
    "--no-save-args",
    "--no-rc-file",
  ];
}

export class FwknopServer {
  private opened = 0;
  /** The end of what fwknopd printed, for a report when it stops answering. */
  tail = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
  ) {}

  static async start(lab: Lab, host: string, dir: string, o: { protectPort: number; openSeconds: number; keys: FwknopKeys }): Promise<FwknopServer> {
    for (const argv of fwknopGateArgvs(o.protectPort)) {
      const r = await lab.exec(host, argv);
      if (r.code !== 0) throw new Error(`fwknop gate: ${argv.join(" ")} failed: ${r.stderr.trim()}`);
    }
    const run = join(dir, "fwknop-run");
    mkdirSync(run, { recursive: true, mode: 0o700 });
    const conf = join(dir, "fwknopd.conf");
    const access = join(dir, "access.conf");
    writeFileSync(conf, `PCAP_INTF eth0;\nFWKNOP_RUN_DIR ${run};\nFIREWALL_EXE /usr/sbin/iptables;\n`, { mode: 0o600 });
    writeFileSync(
      access,
      `SOURCE ANY\nOPEN_PORTS tcp/${o.protectPort}\nKEY_BASE64 ${o.keys.rijndaelBase64}\nHMAC_KEY_BASE64 ${o.keys.hmacBase64}\nFW_ACCESS_TIMEOUT ${o.openSeconds}\n`,
      { mode: 0o600 },
    );
    const argv = ["fwknopd", "-f", "-c", conf, "-a", access, "-i", "eth0", "-d", join(run, "digest.cache"), "-p", join(run, "fwknopd.pid")];
    const child = lab.spawn(host, argv);
    if (child.pid === undefined) throw new Error("could not start fwknopd");
    const server = new FwknopServer(child, child.pid);
    let out = "";
    let ready = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fwknopd did not start: ${out.trim().slice(-400)}`)), 15_000);
      // Kept attached: its output keeps draining (a full pipe would block it) and grants are counted.
      const onData = (t: string): void => {
        server.opened += (t.match(/Added access rule/gi) ?? []).length;
        server.tail = (server.tail + t).slice(-1500);
        if (ready) return;
        out += t;
        if (/Starting fwknopd|listening|Sniffing interface/i.test(out)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.setEncoding("utf8").on("data", onData);
      child.stderr?.setEncoding("utf8").on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`fwknopd exited (${code}): ${out.trim().slice(-400)}`));
      });
    });
    await sleep(500);
    return server;
  }

  /** Access rules fwknopd reported adding so far. */
  openedCount(): number {
    return this.opened;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await done;
    clearTimeout(timer);
  }
}
