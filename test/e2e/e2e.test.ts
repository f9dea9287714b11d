/**
 * The whole system in a three-host lab: real `tknock-server run`, real `tknock`, real packets, real nftables.
 * Hosts: client 198.18.0.1, server 198.18.0.2, other 198.18.0.3. Clients use 10 s windows to keep waits short.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";

const PERIOD = 10;
const OPEN_SECONDS = 3;

describeAsRoot("end to end: tknock in a namespace lab", () => {
  let t: TknockLab;
  let service: ChildProcess;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: OPEN_SECONDS, extraConfig: { bruteForce: { maxFailuresPerMinute: 20, ban: false, banSeconds: 60 } } });
    service = t.startService(t.protectPort);
    await t.enrollClient("alice", ["--period", String(PERIOD)]);
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  const stepNow = (): number => Math.floor(Date.now() / 1000 / PERIOD);

  /** Waits out the end of a window, so what the client computes and what the server matches share one step. */
  async function awayFromWindowEdge(marginMs = 2000): Promise<void> {
    const leftMs = PERIOD * 1000 - (Date.now() % (PERIOD * 1000));
    if (leftMs < marginMs) await sleep(leftMs + 50);
  }

  /** Grants are per source address; wait until none is left so the next check proves a new opening. */
  async function waitNoGrants(): Promise<void> {
    const deadline = Date.now() + (OPEN_SECONDS + 5) * 1000;
    while (Date.now() < deadline) {
      const status = JSON.parse(await t.serverOk(["status", "--json"])) as { grants: unknown[] };
      if (status.grants.length === 0) return;
      await sleep(250);
    }
    throw new Error("grants did not expire");
  }

  /** The client knocks once with tcpdump watching; returns the ports it sent, in order, and the step. */
  async function knockAndCapture(name: string, extra: readonly string[] = []): Promise<{ ports: number[]; code: number }> {
    const cap = await t.capture(
      "server",
      `src host ${t.lab.host("client").ipv4} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst portrange 10000-59999`,
    );
    const r = await t.client([name, ...extra]);
    const printed = await cap.stop();
    const ports = [...printed.matchAll(/> [\d.]+\.(\d+): Flags \[S\]/g)].map((m) => Number(m[1]));
    return { ports, code: r.code };
  }

  it("when nmap scans the protected port and knock ports before any knock then every port is filtered", async () => {
    // Knock ports of a window a day ahead: as real as the current ones to a scanner, but the scan cannot spend a
    // step the next test needs (nmap's two passes in random order can hold a sequence within the tolerated gaps).
    const dayAhead = String(Math.floor(Date.now() / 1000) + 86_400);
    const seq = JSON.parse(await t.serverOk(["sequence", "alice", "--json", "--at", dayAhead])) as { ports: number[] };
    const ports = [t.protectPort, ...seq.ports, 10001, 59999].join(",");
    const r = await t.lab.exec("other", ["nmap", "-Pn", "-n", "-sS", "--max-retries", "1", "--host-timeout", "30s", "-p", ports, "-oG", "-", t.serverAddr], {
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(0);
    const line = r.stdout.split("\n").find((l) => l.includes("Ports:")) ?? "";
    // With every port filtered, nmap may summarise them ("Ignored State: filtered") instead of listing each.
    expect(r.stdout).not.toMatch(/\/open\/|\/closed\//);
    expect(line === "" ? r.stdout : line).toMatch(/filtered/);
  });

  it("when no knock was sent then a connect to the protected port gets no answer", async () => {
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");
  });

  it("when the client knocks with --wait then it opens for the client only, and closes after openSeconds while an open connection lives on", async () => {
    const r = await t.client(["alice", "--wait", "10"]);
    expect(r.code, r.stderr).toBe(0);
    const probe = await t.probe("client", t.protectPort);
    expect(probe.state).toBe("open");
    expect(probe.data).toContain("hello from the protected service");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");

    // A connection made during the grant keeps working after it expires (established traffic is accepted).
    const longLived = t.lab.spawn("client", [
      "node",
      "-e",
      `const s=require("net").connect(${t.protectPort},${JSON.stringify(t.serverAddr)});let n=0,late=0;const t0=Date.now();s.on("data",d=>{n++;if(Date.now()-t0>${(OPEN_SECONDS + 2) * 1000})late++});const i=setInterval(()=>s.write("ping"),400);setTimeout(()=>{clearInterval(i);console.log(JSON.stringify({n,late}));process.exit(0)},${(OPEN_SECONDS + 4) * 1000});`,
    ]);
    let out = "";
    longLived.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    await waitNoGrants();
    await sleep(500);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");
    await new Promise((res) => longLived.once("exit", res));
    const counts = JSON.parse(out.trim()) as { n: number; late: number };
    expect(counts.late).toBeGreaterThan(0);
  }, 60_000);

  it("when a captured knock is replayed from another host, in the same window and after the windows passed, then both are refused and recorded", async () => {
    await waitNoGrants();
    const { ports, code } = await knockAndCapture("alice");
    expect(code).toBe(0);
    expect(ports).toHaveLength(4);
    const opened = await t.waitForLog((l) => l.msg === "opened" && l["client"] === "alice", 5000, 0);
    void opened;
    const knockedStep = await lastAliceStep();

    await t.sendSyns("other", ports);
    await expectReplay(knockedStep, 1);
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");

    // Wait until the knocked step lies outside the accepted windows (T-1..T+1), then replay again.
    while (stepNow() <= knockedStep + 1) await sleep(500);
    await t.sendSyns("other", ports);
    await expectReplay(knockedStep, 2);
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  async function lastAliceStep(): Promise<number> {
    const status = JSON.parse(await t.serverOk(["status", "--json"])) as { clients: { name: string; lastAcceptedStep: number | null }[] };
    const step = status.clients.find((c) => c.name === "alice")?.lastAcceptedStep;
    if (typeof step !== "number") throw new Error("alice has no accepted step");
    return step;
  }

  async function expectReplay(step: number, count: number): Promise<void> {
    const deadline = Date.now() + 5000;
    let found: unknown[] = [];
    while (Date.now() < deadline) {
      found = (await t.replays()).filter((r) => r.kind === "replay" && r.source === t.lab.host("other").ipv4 && r.step === step);
      if (found.length >= count) break;
      await sleep(200);
    }
    expect(found).toHaveLength(count);
  }

  it("when the client clock is one window ahead then the knock opens; three windows ahead then it is refused as skew +3", async () => {
    const mark = t.logCount; // before enrolling: the daemon may reload while `tknock add` still runs
    await t.enrollClient("bob", ["--period", String(PERIOD)]);
    await t.waitForLog((l) => l.msg === "clients reloaded", 5000, mark);
    await waitNoGrants();
    const ahead1 = await t.client(["bob", "--time-offset", String(PERIOD), "--wait", "5"]);
    expect(ahead1.code, ahead1.stderr).toBe(0);
    await waitNoGrants();
    await awayFromWindowEdge();
    const ahead3 = await t.client(["bob", "--time-offset", String(3 * PERIOD), "--wait", "2"]);
    expect(ahead3.code).toBe(3);
    const skew = (await t.replays()).filter((r) => r.kind === "skew" && r.client === "bob");
    expect(skew.length).toBeGreaterThanOrEqual(1);
    expect(skew.at(-1)?.offsetWindows).toBe(3);
  }, 60_000);

  it("when more wrong knocks than tolerated come in the middle then nothing opens; when another host sweeps the range then nothing opens and it is recorded as brute force", async () => {
    // A client of its own: the test knocks by hand, which the client store of "alice" would not know about.
    const mark = t.logCount;
    await t.enrollClient("dave", ["--period", String(PERIOD)]);
    await t.waitForLog((l) => l.msg === "clients reloaded", 5000, mark);
    await waitNoGrants();
    await awayFromWindowEdge();
    const seq = JSON.parse(await t.serverOk(["sequence", "dave", "--json"])) as { ports: number[] };
    const [p1, p2, p3, p4] = seq.ports as [number, number, number, number];
    // toleratedWrongKnocks is 4 by default: five distinct wrong ports between p2 and p3 end the attempt.
    const wrong = Array.from({ length: 10 }, (_, i) => 10000 + i)
      .filter((p) => !seq.ports.includes(p))
      .slice(0, 5);
    await t.sendSyns("client", [p1, p2, ...wrong, p3, p4]);
    await sleep(500);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");
    // The same window's sequence, sent cleanly, does open: it was the wrong knocks that reset the progress.
    await t.sendSyns("client", [p1, p2, p3, p4]);
    await sleep(300);
    expect((await t.probe("client", t.protectPort)).state).toBe("open");

    const sweep = Array.from({ length: 400 }, (_, i) => 20000 + i);
    await t.sendSyns("other", sweep, 1);
    await sleep(500);
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
    const brute = (await t.replays()).filter((r) => r.kind === "bruteforce" && r.source === t.lab.host("other").ipv4);
    expect(brute.length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("when the daemon is killed with -9 during a grant then the gate stays, the grant expires by itself, and after a restart the used sequence is still refused", async () => {
    await waitNoGrants();
    const { ports, code } = await knockAndCapture("alice", ["--wait", "5"]);
    expect(code).toBe(0);
    const usedStep = await lastAliceStep();
    await t.stopDaemon("SIGKILL");
    expect((await t.probe("client", t.protectPort)).state).toBe("open");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
    await sleep((OPEN_SECONDS + 1) * 1000);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");

    await t.startDaemon();
    await t.sendSyns("other", ports);
    await expectReplayOf(usedStep);
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  async function expectReplayOf(step: number): Promise<void> {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const rs = await t.replays();
      if (rs.some((r) => r.kind === "replay" && r.step === step && r.source === t.lab.host("other").ipv4)) return;
      await sleep(200);
    }
    throw new Error(`no replay of step ${step} recorded`);
  }

  it("when a client is enrolled while the daemon runs then its knock works without a restart, and after revoke it no longer does", async () => {
    const mark = t.logCount;
    await t.enrollClient("carol", ["--period", String(PERIOD)]);
    await t.waitForLog((l) => l.msg === "clients reloaded", 5000, mark);
    await waitNoGrants();
    const ok = await t.client(["carol", "--wait", "5"]);
    expect(ok.code, ok.stderr).toBe(0);

    const mark2 = t.logCount;
    await t.serverOk(["revoke", "carol"]);
    await t.waitForLog((l) => l.msg === "clients reloaded", 5000, mark2);
    await waitNoGrants();
    const refused = await t.client(["carol", "--wait", "2"]);
    expect(refused.code).toBe(3);
  }, 60_000);
});
