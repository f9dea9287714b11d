/**
 * SPA in the namespace lab (issue 13's "done when"): real `tknock-server run` (pcap listener), real `tknock`, real
 * datagrams and nftables. Hosts: client 198.18.0.1, server 198.18.0.2, other 198.18.0.3. Packets captured with
 * tcpdump are re-sent byte for byte from "other" with node's dgram.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parsePcapBuffer } from "../../server/packets/pcap.js";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";

const OPEN_SECONDS = 3;
const PORT_A = 2222;
const PORT_B = 2223;

describeAsRoot("end to end: SPA", () => {
  let t: TknockLab;
  const services: ChildProcess[] = [];

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: OPEN_SECONDS, protectPort: PORT_A });
    const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(t.configPath, JSON.stringify({ ...config, protect: [PORT_A, PORT_B] }, null, 2));
    services.push(t.startService(PORT_A), t.startService(PORT_B, "hello from B\n"));
    const { uri } = await t.enrollClient("alice", ["--mode", "spa", "--open", String(PORT_A), String(PORT_B)]);
    // The same profile, aimed at "other": an observer on the path that holds the packet back (scenario 4).
    const relayed = await t.client(["add", uri, "--name", "via-other", "--addr", t.lab.host("other").ipv4]);
    expect(relayed.code, relayed.stderr).toBe(0);
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    for (const s of services) s.kill();
    await t?.destroy();
  });

  const ip = (host: string): string => t.lab.host(host).ipv4;

  /** Away from the end of a 30 s window, so a packet and its replays share the candidate windows. */
  async function awayFromWindowEdge(marginMs = 8000): Promise<void> {
    const leftMs = 30_000 - (Date.now() % 30_000);
    if (leftMs < marginMs) await sleep(leftMs + 50);
  }

  async function waitNoGrants(): Promise<void> {
    const deadline = Date.now() + (OPEN_SECONDS + 5) * 1000;
    while (Date.now() < deadline) {
      const status = JSON.parse(await t.serverOk(["status", "--json"])) as { grants: unknown[] };
      if (status.grants.length === 0) return;
      await sleep(250);
    }
    throw new Error("grants did not expire");
  }

  /** Runs `tknock ARGS` while tcpdump on `host` writes what arrives from the client; returns the SPA datagram. */
  async function knockAndCapture(host: string, args: readonly string[]): Promise<{ port: number; bytes: Buffer }> {
    const file = join(t.dir, `spa-${Date.now()}.pcap`);
    const cap = t.lab.spawn(host, ["tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-w", file, `udp and src host ${ip("client")}`]);
    let err = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
      cap.stderr?.setEncoding("utf8").on("data", (c: string) => {
        err += c;
        if (err.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const r = await t.client(args);
    expect(r.code, r.stderr).toBe(0);
    await sleep(200);
    const exited = new Promise((res) => cap.once("exit", res));
    cap.kill("SIGINT");
    await exited;
    const datagrams: { port: number; bytes: Buffer }[] = [];
    parsePcapBuffer(readFileSync(file), (k) => {
      if (k.payload !== undefined) datagrams.push({ port: k.dstPort, bytes: Buffer.from(k.payload) });
    });
    expect(datagrams).toHaveLength(1);
    return datagrams[0]!;
  }

  /** Sends the bytes as one UDP datagram from a host. */
  async function resend(host: string, d: { port: number; bytes: Buffer }): Promise<void> {
    const code = `const s=require("dgram").createSocket("udp4");s.send(Buffer.from(${JSON.stringify(d.bytes.toString("hex"))},"hex"),${d.port},${JSON.stringify(t.serverAddr)},e=>{s.close();process.exit(e?1:0)})`;
    const r = await t.lab.exec(host, ["node", "-e", code], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(0);
  }

  async function spaRefusalsFrom(host: string, atLeast: number): Promise<{ kind: string; source: string; client?: string }[]> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = (await t.replays()).filter((r) => r.kind.startsWith("spa-") && r.source === ip(host));
      if (found.length >= atLeast || Date.now() > deadline) return found;
      await sleep(200);
    }
  }

  let captured: { port: number; bytes: Buffer };

  it("when the client sends one SPA packet asking for one port then that port opens for the client only", async () => {
    await awayFromWindowEdge();
    captured = await knockAndCapture("server", ["alice", "--open", String(PORT_A), "--wait", "5"]);
    const seq = JSON.parse(await t.serverOk(["sequence", "alice", "--json"])) as { ports: number[] };
    expect(seq.ports).toEqual([captured.port]);
    expect((await t.probe("client", PORT_A)).state).toBe("open");
    expect((await t.probe("client", PORT_B)).state).toBe("filtered");
    expect((await t.probe("other", PORT_A)).state).toBe("filtered");
  }, 30_000);

  it("when the captured packet is replayed from another host, in the window and after a daemon restart, then both are refused and recorded", async () => {
    await resend("other", captured);
    expect(await spaRefusalsFrom("other", 1)).toMatchObject([{ kind: "spa-replay", client: "alice" }]);
    expect((await t.probe("other", PORT_A)).state).toBe("filtered");

    await t.stopDaemon();
    await t.startDaemon();
    await resend("other", captured);
    expect(await spaRefusalsFrom("other", 2)).toMatchObject([{ kind: "spa-replay" }, { kind: "spa-replay" }]);
    expect((await t.probe("other", PORT_A)).state).toBe("filtered");
  }, 30_000);

  it("when a packet is captured on the way and sent first from another host then it opens only the client's address, nothing for that host", async () => {
    await waitNoGrants();
    await awayFromWindowEdge();
    // The client's packet goes to "other", which sends it on to the server before the client could.
    const held = await knockAndCapture("other", ["via-other", "--open", String(PORT_B)]);
    const mark = t.logCount;
    await resend("other", held);
    await t.waitForLog((l) => l.msg === "opened" && l["via"] === "spa", 5000, mark);
    expect((await t.probe("other", PORT_B)).state).toBe("filtered");
    expect((await t.probe("client", PORT_B)).state).toBe("open");
  }, 30_000);

  it("when the packet names another address then only that address opens", async () => {
    await waitNoGrants();
    await awayFromWindowEdge();
    const mark = t.logCount;
    const r = await t.client(["alice", "--open", String(PORT_B), "--allow-ip", ip("other")]);
    expect(r.code, r.stderr).toBe(0);
    const opened = await t.waitForLog((l) => l.msg === "opened" && l["via"] === "spa", 5000, mark);
    expect(opened).toMatchObject({ src: ip("client"), address: ip("other"), ports: [PORT_B] });
    const probe = await t.probe("other", PORT_B);
    expect(probe.state).toBe("open");
    expect(probe.data).toContain("hello from B");
    expect((await t.probe("client", PORT_B)).state).toBe("filtered");
  }, 30_000);
});

describeAsRoot("end to end: SPA through the nflog listener with the kernel prefilter (the default)", () => {
  let t: TknockLab;
  let service: ChildProcess | undefined;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: OPEN_SECONDS });
    const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(t.configPath, JSON.stringify({ ...config, listener: "nflog", nflogGroup: 19, prefilter: true }, null, 2));
    service = t.startService(t.protectPort);
    await t.enrollClient("alice", ["--mode", "spa"]);
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the client sends its SPA packet then the gate's NFLOG copy carries it whole and the port opens for the client only", async () => {
    const table = await t.lab.exec("server", ["nft", "list", "table", "inet", "tknock"]);
    expect(table.stdout).toContain("log group 19");
    const r = await t.client(["alice", "--wait", "5"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await t.probe("client", t.protectPort)).state).toBe("open");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 30_000);
});
