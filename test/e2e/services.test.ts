/**
 * Never block what the host serves: local services inside the knock range stay reachable from other hosts while
 * the daemon runs, also one started after it, while the protected port stays filtered and a knock still opens.
 * Then the knock-range drop turned off: knocks still work, and a scan sees the range closed, not filtered.
 * Hosts: client 198.18.0.1, server 198.18.0.2, other 198.18.0.3.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseProfileUri } from "../../src/protocol/profile-uri.js";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";

const PERIOD = 10;
const TCP_SERVICE = 45678; // inside the default knock range 10000-59999
const WIREGUARD = 51820;
/** The bound for a service started after the daemon. */
const LATE_SERVICE_MS = 1000;

/** A UDP echo server on [::]:port (v4 and v6) in a lab host; prints "listening" once bound. */
function startUdpService(t: TknockLab, port: number): ChildProcess {
  const code = `const s=require("dgram").createSocket("udp6");s.on("message",(m,r)=>s.send(m,r.port,r.address));s.bind(${port},"::",()=>console.log("listening"))`;
  return t.lab.spawn("server", ["node", "-e", code]);
}

function listening(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`service did not start: ${out}`)), timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (c: string) => {
      out += c;
      if (out.includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** One datagram from a host to the server: "reply" when the echo comes back within timeoutMs, else "timeout". */
async function probeUdp(t: TknockLab, from: string, port: number, timeoutMs = 1000): Promise<string> {
  const code = `const s=require("dgram").createSocket("udp4");const t=setTimeout(()=>{console.log("timeout");process.exit(0)},${timeoutMs});s.on("message",()=>{clearTimeout(t);console.log("reply");process.exit(0)});s.send("ping",${port},${JSON.stringify(t.serverAddr)})`;
  return (await t.lab.exec(from, ["node", "-e", code], { timeoutMs: timeoutMs + 5000 })).stdout.trim();
}

/** Polls until check() is true; returns the ms it took, or throws after limitMs. Each check is bounded. */
async function msUntil(check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < limitMs) {
    if (await check()) return Date.now() - t0;
    await sleep(100);
  }
  throw new Error(`not reachable within ${limitMs} ms`);
}

describeAsRoot("end to end: local services in the knock range stay reachable", () => {
  let t: TknockLab;
  const services: ChildProcess[] = [];

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: 3 });
    services.push(t.startService(t.protectPort));
    const tcp = t.startService(TCP_SERVICE, "hello from a service in the knock range\n");
    const udp = startUdpService(t, WIREGUARD);
    services.push(tcp, udp);
    await Promise.all([listening(tcp), listening(udp)]);
  }, 60_000);

  afterAll(async () => {
    for (const s of services) s.kill();
    await t?.destroy();
  });

  it("when a client is enrolled while services listen in the knock range then its URI excludes their ports", async () => {
    const { uri } = await t.enrollClient("alice", ["--period", String(PERIOD)]);
    expect(parseProfileUri(uri).exclude).toEqual([t.protectPort, TCP_SERVICE, WIREGUARD, 10080]); // 10080: a Fetch bad port (web client)
  });

  it("when the daemon runs then it warns once per service, both stay reachable from another host, and the protected port and the rest of the range stay filtered", async () => {
    await t.startDaemon();
    const warnings = await Promise.all(
      [
        ["tcp", TCP_SERVICE],
        ["udp", WIREGUARD],
      ].map(([proto, port]) => t.waitForLog((l) => l.level === 40 && l["proto"] === proto && l["port"] === port, 2000)),
    );
    expect(warnings.map((l) => l.msg)).toEqual([expect.stringContaining("left reachable"), expect.stringContaining("left reachable")]);
    const probe = await t.probe("other", TCP_SERVICE);
    expect(probe.state).toBe("open");
    expect(probe.data).toContain("hello from a service in the knock range");
    expect(await probeUdp(t, "other", WIREGUARD)).toBe("reply");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
    expect((await t.probe("other", TCP_SERVICE + 1)).state).toBe("filtered");
    expect((await t.probe("other", WIREGUARD)).state).toBe("filtered"); // tcp/51820: only udp is served
  }, 30_000);

  it("when services start after the daemon then each is reachable from another host within 1 s, and warned about once", async () => {
    expect((await t.probe("other", 46000)).state).toBe("filtered"); // the gate is in place: this cannot pass vacuously
    const mark = t.logCount;
    const tcp = t.startService(46000, "late\n");
    const udp = startUdpService(t, 46001);
    services.push(tcp, udp);
    await Promise.all([listening(tcp), listening(udp)]);
    const [tcpMs, udpMs] = await Promise.all([
      msUntil(async () => (await t.probe("other", 46000, 300)).state === "open", LATE_SERVICE_MS),
      msUntil(async () => (await probeUdp(t, "other", 46001, 300)) === "reply", LATE_SERVICE_MS),
    ]);
    expect(tcpMs).toBeLessThan(LATE_SERVICE_MS);
    expect(udpMs).toBeLessThan(LATE_SERVICE_MS);
    // The gate's socket rule made them reachable; the daemon's poll (every 10 s) lists them and warns.
    await t.waitForLog((l) => l.msg === "local services changed; gate updated", 12_000, mark);
    const warned = t.logsSince(mark).filter((l) => l.level === 40 && (l["port"] === 46000 || l["port"] === 46001));
    expect(warned).toHaveLength(2);
  }, 30_000);

  it("when the client knocks then the protected port opens for it alone, with the services still reachable", async () => {
    const r = await t.client(["alice", "--wait", "10"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await t.probe("client", t.protectPort)).state).toBe("open");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
    expect(await probeUdp(t, "other", WIREGUARD)).toBe("reply");
  }, 30_000);
});

describeAsRoot("end to end: knockRangeDrop off", () => {
  let t: TknockLab;
  let service: ChildProcess;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: 3, extraConfig: { knockRangeDrop: false } });
    service = t.startService(t.protectPort);
    await listening(service);
    await t.enrollClient("bob", ["--period", String(PERIOD)]);
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the knock range is not dropped then a scan sees it closed, the protected port stays filtered, and a knock still opens", async () => {
    expect((await t.probe("other", 40000)).state).toBe("refused");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
    const r = await t.client(["bob", "--wait", "10"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await t.probe("client", t.protectPort)).state).toBe("open");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 30_000);
});
