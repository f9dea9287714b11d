/**
 * The client as people use it, against the real daemon in the namespace lab: knocks that run in parallel or in a
 * burst (ssh's ProxyCommand), a one-off --time-offset, and a UDP service behind the gate. Each case knocks from a
 * host of its own, because grants are per source address.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { CLIENT_BIN, TknockLab, type LogLine } from "../../lab/tknock-lab.js";

const TCP_PORT = 2222;
const UDP_PORT = 1194;
const HOSTS = ["client", "server", "other", "burst", "skew", "udp1", "udp2"] as const;

describeAsRoot("end to end: the client never stalls and never collides", () => {
  let t: TknockLab;
  const services: ChildProcess[] = [];

  /** Enrols NAME for PORT (before the daemon starts) and adds it to the store of HOST (each host has its own store). */
  async function enrol(name: string, host: string, port: number): Promise<void> {
    const out = await t.serverOk(["enroll", name, "--host", "gw.example.org", "--addr", t.serverAddr, "--open", String(port)]);
    const uri = out.split("\n").find((l) => l.startsWith("otpauth://"));
    if (uri === undefined) throw new Error(`enroll printed no URI: ${out}`);
    const added = await t.client(["add", uri, "--name", name], { host, home: homeOf(host) });
    if (added.code !== 0) throw new Error(`tknock add failed: ${added.stderr}`);
  }
  const homeOf = (host: string): string => `${t.dir}/home-${host}`;
  const run = (host: string, args: readonly string[], input?: string) =>
    t.lab.exec(host, ["env", `TKNOCK_HOME=${homeOf(host)}`, "node", CLIENT_BIN, ...args], { timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) });
  const timed = async (host: string, args: readonly string[], input?: string) => {
    const start = Date.now();
    const r = await run(host, args, input);
    return { ...r, ms: Date.now() - start };
  };
  const logsOf = (client: string, from: number): LogLine[] => t.logsSince(from).filter((l) => l["client"] === client);

  beforeAll(async () => {
    t = await TknockLab.create({ hosts: [...HOSTS], protectPort: TCP_PORT, openSeconds: 20, extraConfig: { protect: [TCP_PORT, UDP_PORT] } });
    services.push(t.startService(TCP_PORT));
    // A UDP echo service: any datagram comes back.
    services.push(
      t.lab.spawn("server", [
        "node",
        "-e",
        `const s=require("dgram").createSocket("udp4");s.on("message",(m,r)=>s.send(m,r.port,r.address));s.bind(${UDP_PORT})`,
      ]),
    );
    await enrol("par", "client", TCP_PORT);
    await enrol("burst", "burst", TCP_PORT);
    await enrol("skew", "skew", TCP_PORT);
    await enrol("udp1", "udp1", UDP_PORT);
    await enrol("udp2", "udp2", UDP_PORT);
    await t.startDaemon();
  }, 90_000);

  afterAll(async () => {
    for (const s of services) s.kill();
    await t?.destroy();
  });

  it("when 3 `tknock NAME --wait 5` start at once and 3 more follow one after the other then all exit 0 within 8 s, with at most 2 accepted steps and no replay of its own", async () => {
    const from = t.logCount;
    const start = Date.now();
    const parallel = await Promise.all([1, 2, 3].map(() => run("client", ["par", "--wait", "5"])));
    const sequential = [];
    for (let i = 0; i < 3; i++) sequential.push(await run("client", ["par", "--wait", "5"]));
    const totalMs = Date.now() - start;
    for (const r of [...parallel, ...sequential]) expect(r.code, r.stderr).toBe(0);
    expect(totalMs).toBeLessThan(8000);
    // One knock opened the port; the others waited for it (or came later) and sent nothing.
    expect([...parallel, ...sequential].filter((r) => /no knock sent/.test(r.stderr)).length).toBeGreaterThanOrEqual(4);
    const lines = logsOf("par", from);
    expect(lines.filter((l) => l.msg === "opened").length).toBeGreaterThanOrEqual(1);
    expect(lines.filter((l) => l.msg === "opened").length).toBeLessThanOrEqual(2);
    expect(lines.filter((l) => l.msg === "knock refused")).toEqual([]);
    expect((await t.replays()).filter((r) => r.client === "par")).toEqual([]);
  }, 60_000);

  it("when `tknock proxy HOST PORT` runs 5 times in a row (an ssh burst) then none waits more than 2 s, all within 20 s", async () => {
    const start = Date.now();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      // By the URI's short host name, as ssh_config's %h gives it.
      const r = await timed("burst", ["proxy", "gw", String(TCP_PORT)], "ping\n");
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("hello from the protected service");
      times.push(r.ms);
    }
    expect(Math.max(...times), `proxy times: ${times.join(", ")} ms`).toBeLessThan(2000);
    expect(Date.now() - start).toBeLessThan(20_000);
  }, 60_000);

  it("when a knock with a one-off --time-offset three windows ahead is refused then the next knock without it opens without waiting for a window", async () => {
    const off = await run("skew", ["skew", "--time-offset", "90", "--wait", "1"]);
    expect(off.code).toBe(3);
    const r = await timed("skew", ["skew", "--wait", "5"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/waiting/);
    expect(r.ms).toBeLessThan(3000);
  }, 60_000);

  it("when a knock with a one-off --time-offset one window ahead opened then the next knock without it finds the port open at once", async () => {
    // --probe-timeout 0: knock although the previous case's grant may still be open, so step T+1 is spent.
    const from = t.logCount;
    const first = await run("skew", ["skew", "--time-offset", "30", "--probe-timeout", "0", "--wait", "5"]);
    expect(first.code, first.stderr).toBe(0);
    await t.waitForLog((l) => l.msg === "opened" && l["client"] === "skew", 5000, from);
    const r = await timed("skew", ["skew", "--wait", "5"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/waiting/);
    expect(r.ms).toBeLessThan(3000);
  }, 60_000);

  it("when the protected port is a UDP service then --wait exits 0 once the daemon opened it, saying it cannot be probed over TCP; with --probe-udp the service's reply proves it", async () => {
    const from = t.logCount;
    const plain = await run("udp1", ["udp1", "--wait", "5"]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/no TCP service answers/);
    expect(logsOf("udp1", from).some((l) => l.msg === "opened")).toBe(true);

    const probed = await run("udp2", ["udp2", "--wait", "5", "--probe-udp", "00"]);
    expect(probed.code, probed.stderr).toBe(0);
    expect(probed.stderr).toMatch(/open after \d+ ms/);
    // The service answers the client now: a second run sees that and sends no knock.
    const again = await run("udp2", ["udp2", "--wait", "5", "--probe-udp", "00"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already open.*no knock sent/);
  }, 60_000);
});
