/**
 * A timestamping capture for the latency part: tcpdump inside one lab host, its pcap stream read here into TCP
 * events (kernel receive/transmit timestamps, microseconds, the same CLOCK_REALTIME in every namespace).
 * Only Ethernet + IPv4 + TCP or UDP (SPA), which is all the lab sends for these measurements.
 */
import type { ChildProcess } from "node:child_process";
import type { Lab } from "../lab/lab.js";

export type TcpEvent = {
  /** Capture timestamp, ms since the epoch (microsecond resolution). */
  readonly atMs: number;
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  /** TCP flags byte (SYN 0x02, ACK 0x10); 0 for UDP. */
  readonly flags: number;
  readonly proto: "tcp" | "udp";
};

export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;

export class PacketCapture {
  readonly events: TcpEvent[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private headerSeen = false;
  private nanos = false;

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on("data", (chunk: Buffer) => this.push(chunk));
  }

  /** Starts tcpdump on the host's eth0 with a BPF filter; resolves once it is capturing. */
  static async start(lab: Lab, host: string, filter: string): Promise<PacketCapture> {
    const child = lab.spawn(host, ["tcpdump", "-i", "eth0", "-n", "-p", "-U", "--immediate-mode", "-s", "96", "-B", "8192", "-w", "-", filter]);
    const cap = new PacketCapture(child);
    await new Promise<void>((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`capture on ${host} did not start: ${err.trim()}`)), 10_000);
      child.stderr?.setEncoding("utf8").on("data", (t: string) => {
        err += t;
        if (err.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`capture on ${host} exited (${code}): ${err.trim()}`));
      });
    });
    return cap;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill("SIGINT");
    await done;
  }

  private push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let off = 0;
    const b = this.buf;
    if (!this.headerSeen) {
      if (b.length < 24) return;
      const magic = b.readUInt32LE(0);
      this.nanos = magic === 0xa1b23c4d;
      this.headerSeen = true;
      off = 24;
    }
    while (off + 16 <= b.length) {
      const captured = b.readUInt32LE(off + 8);
      if (off + 16 + captured > b.length) break;
      const seconds = b.readUInt32LE(off);
      const frac = b.readUInt32LE(off + 4);
      const atMs = seconds * 1000 + (this.nanos ? frac / 1e6 : frac / 1e3);
      this.decode(b, off + 16, captured, atMs);
      off += 16 + captured;
    }
    this.buf = b.subarray(off);
  }

  private decode(b: Buffer, off: number, len: number, atMs: number): void {
    if (len < 14 + 20 + 14 || b.readUInt16BE(off + 12) !== 0x0800) return;
    const ip = off + 14;
    const ihl = (b[ip]! & 0x0f) * 4;
    const udp = b[ip + 9] === 17;
    if ((b[ip + 9] !== 6 && !udp) || 14 + ihl + (udp ? 8 : 14) > len) return;
    const tcp = ip + ihl;
    this.events.push({
      proto: udp ? "udp" : "tcp",
      atMs,
      src: `${b[ip + 12]}.${b[ip + 13]}.${b[ip + 14]}.${b[ip + 15]}`,
      dst: `${b[ip + 16]}.${b[ip + 17]}.${b[ip + 18]}.${b[ip + 19]}`,
      srcPort: b.readUInt16BE(tcp),
      dstPort: b.readUInt16BE(tcp + 2),
      flags: udp ? 0 : b[tcp + 13]!,
    });
  }
}

/**
 * A connect poller living in one lab host: on request it opens a new TCP connection to ADDR:PORT every
 * `intervalMs` until one connects (a dropped SYN never answers, so each attempt is a fresh socket, abandoned
 * after 50 ms) and reports when. It measures when a grant appears, to within intervalMs, as any client sees it.
 */
export class ConnectProber {
  private pending: ((r: ProbeResult) => void) | undefined;
  private out = "";

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding("utf8").on("data", (t: string) => {
      this.out += t;
      let nl: number;
      while ((nl = this.out.indexOf("\n")) >= 0) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        const p = this.pending;
        this.pending = undefined;
        p?.(JSON.parse(line) as ProbeResult);
      }
    });
  }

  static start(lab: Lab, host: string): ConnectProber {
    const code = `const net=require("net");const now=()=>performance.timeOrigin+performance.now();
require("readline").createInterface({input:process.stdin}).on("line",(line)=>{
const {addr,port,timeoutMs,intervalMs}=JSON.parse(line);let done=false,attempts=0;const socks=new Set();
const finish=(r)=>{if(done)return;done=true;clearInterval(iv);clearTimeout(to);for(const s of socks)s.destroy();process.stdout.write(JSON.stringify({...r,attempts})+"\\n")};
const attempt=()=>{attempts++;const s=net.connect({host:addr,port});socks.add(s);s.on("connect",()=>finish({ok:true,atMs:now()}));s.on("error",()=>{});
setTimeout(()=>{if(!done){s.destroy();socks.delete(s)}},50)};
const iv=setInterval(attempt,intervalMs);attempt();const to=setTimeout(()=>finish({ok:false,atMs:now()}),timeoutMs)});`;
    return new ConnectProber(lab.spawn(host, ["node", "-e", code], { stdio: ["pipe", "pipe", "pipe"] }));
  }

  /** Starts polling now; resolves when a connection succeeded or timeoutMs passed. One probe at a time. */
  probe(addr: string, port: number, timeoutMs: number, intervalMs = 1): Promise<ProbeResult> {
    if (this.pending) throw new Error("prober busy");
    return new Promise((resolve) => {
      this.pending = resolve;
      this.child.stdin?.write(`${JSON.stringify({ addr, port, timeoutMs, intervalMs })}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
    this.child.kill();
  }
}

export type ProbeResult = { ok: boolean; atMs: number; attempts: number };
