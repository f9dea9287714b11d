/**
 * knockd (Debian package knockd 0.8) on its own lab host, protecting the same port as tknock the way its manual
 * suggests: a fixed 4-port TCP SYN sequence whose command adds the knocking address to an nftables set with a
 * timeout (the same kind of gate tknock installs: established traffic accepted, protected port and knock range
 * dropped). Installed with apt-get when missing.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab } from "../lab/lab.js";
import { sleep } from "./stats.js";

export const KNOCKD_TABLE = "knockbench";
/** Inside tknock's knock range, not ascending, distinct. */
export const KNOCKD_SEQUENCE = [31001, 42002, 23003, 54004] as const;

export function ensureKnockdInstalled(log: (line: string) => void): boolean {
  const have = (): boolean => existsSync("/usr/sbin/knockd") && existsSync("/usr/bin/knock");
  if (have()) return true;
  log("knockd: not installed; running apt-get install -y knockd");
  try {
    execFileSync("apt-get", ["install", "-y", "knockd"], {
      stdio: ["ignore", "ignore", "inherit"],
      timeout: 180_000,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  } catch {
    try {
      execFileSync("apt-get", ["update"], { stdio: "ignore", timeout: 180_000 });
      execFileSync("apt-get", ["install", "-y", "knockd"], {
        stdio: ["ignore", "ignore", "inherit"],
        timeout: 180_000,
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
    } catch {
      /* reported below */
    }
  }
  return have();
}

export function knockdGateScript(protectPort: number, range: { min: number; max: number }): string {
  const t = `inet ${KNOCKD_TABLE}`;
  return [
    `add table ${t}`,
    `add set ${t} grants4 { type ipv4_addr . inet_service; flags timeout; }`,
    `add chain ${t} input { type filter hook input priority filter - 10; policy accept; }`,
    `add rule ${t} input iif "lo" accept`,
    `add rule ${t} input ct state established,related accept`,
    `add rule ${t} input tcp dport ${protectPort} ip saddr . tcp dport @grants4 accept`,
    `add rule ${t} input tcp dport ${protectPort} drop`,
    `add rule ${t} input meta l4proto { tcp, udp } th dport ${range.min}-${range.max} drop`,
    "",
  ].join("\n");
}

export function knockdConfig(o: { logFile: string; iface: string; protectPort: number; openSeconds: number }): string {
  return `[options]
	LogFile = ${o.logFile}
	Interface = ${o.iface}

[tknockbench]
	sequence    = ${KNOCKD_SEQUENCE.map((p) => `${p}:tcp`).join(",")}
	seq_timeout = 5
	tcpflags    = syn
	command     = /usr/sbin/nft add element inet ${KNOCKD_TABLE} grants4 { %IP% . ${o.protectPort} timeout ${o.openSeconds}s }
`;
}

export class KnockdServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly logFile: string,
  ) {}

  /** Installs the gate (once per host; idempotent) and starts knockd in the foreground; resolves when it listens. */
  static async start(
    lab: Lab,
    host: string,
    dir: string,
    o: { protectPort: number; openSeconds: number; range: { min: number; max: number } },
  ): Promise<KnockdServer> {
    const gate = await lab.exec(host, ["nft", "-f", "-"], { input: knockdGateScript(o.protectPort, o.range) });
    if (gate.code !== 0) throw new Error(`knockd gate: nft failed: ${gate.stderr.trim()}`);
    const logFile = join(dir, `knockd-${Date.now()}.log`);
    const conf = join(dir, "knockd.conf");
    writeFileSync(conf, knockdConfig({ logFile, iface: "eth0", protectPort: o.protectPort, openSeconds: o.openSeconds }));
    const child = lab.spawn(host, ["knockd", "-c", conf, "-i", "eth0", "-v"]);
    if (child.pid === undefined) throw new Error("could not start knockd");
    let out = "";
    let ready = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`knockd did not start: ${out.trim()}`)), 10_000);
      // The handlers stay attached after start, so its verbose output keeps draining and a full pipe never blocks it.
      const onData = (t: string): void => {
        if (ready) return;
        out += t;
        if (/listening on/i.test(out)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.setEncoding("utf8").on("data", onData);
      child.stderr?.setEncoding("utf8").on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`knockd exited (${code}): ${out.trim()}`));
      });
    });
    await sleep(200);
    return new KnockdServer(child, child.pid, logFile);
  }

  /** Successful sequences so far ("OPEN SESAME" lines in its log). */
  opened(): number {
    try {
      return (readFileSync(this.logFile, "utf8").match(/OPEN SESAME/g) ?? []).length;
    } catch {
      return 0;
    }
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
