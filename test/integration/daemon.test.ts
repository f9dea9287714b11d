/**
 * The real `tknock-server run` (built dist/) in a three-host lab: client 198.18.0.1, server 198.18.0.2 (tcpdump on
 * eth0, nftables, a TCP service on the protected port), other 198.18.0.3. Knocks come from a small test knocker
 * (node net connects to the ports deriveSequence gives for the secret in clients.json), not from the client CLI,
 * so this suite checks the server alone.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadServerConfig } from "../../server/config/load.js";
import { clientProfile, type ClientsFile } from "../../server/config/schema.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { msUntilNextStep, stepAt } from "../../src/protocol/window.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";
import { describeAsRoot } from "../support/root.js";

const GREETING = "hello from the protected service\n";
/** A lab answers in well under a millisecond; no answer in this long is "filtered". */
const FILTERED_MS = 500;

describeAsRoot("tknock-server run with tcpdump and nftables in a namespace lab", () => {
  let t: TknockLab;
  let service: ChildProcess;

  beforeAll(async () => {
    // dist/ is built by `npm test` first: rebuilding here would replace the CLI bundles while other suites run them.
    t = await TknockLab.create();
    service = t.startService(t.protectPort, GREETING);
    await t.serverOk(["enroll", "alice", "--host", "server", "--addr", t.serverAddr]);
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  function clients(): ClientsFile {
    return JSON.parse(readFileSync(loadServerConfig(t.configPath).clientsFile, "utf8")) as ClientsFile;
  }

  /** The ports a client must knock now, its step and period, from its secret in clients.json. */
  async function sequenceNow(name: string): Promise<{ step: number; ports: number[]; periodSeconds: number }> {
    const r = clients().clients[name];
    if (!r) throw new Error(`${name} is not enrolled`);
    // Knock and replay must fall in one window: start early enough in it.
    const leftMs = msUntilNextStep(Date.now(), r.periodSeconds);
    if (leftMs < 3000) await sleep(leftMs + 100);
    const step = stepAt(Date.now(), r.periodSeconds);
    return { step, ports: deriveSequence(clientProfile(name, r), step), periodSeconds: r.periodSeconds };
  }

  async function waitForReplay(source: string, step: number): Promise<{ kind: string; source: string; client?: string; step?: number; ports?: number[] }> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = (await t.replays()).find((r) => r.source === source && r.step === step);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no replay record from ${source} for step ${step}`);
      await sleep(200);
    }
  }

  it("when the test knocker sends the current sequence then the service opens for that source only, and the same ports from another host are refused as a replay", async () => {
    const client = t.lab.host("client").ipv4;
    const other = t.lab.host("other").ipv4;
    expect((await t.probe("client", t.protectPort, FILTERED_MS)).state).toBe("filtered");

    const { step, ports, periodSeconds } = await sequenceNow("alice");
    const from = t.logCount;
    await t.sendSyns("client", ports);
    await t.waitForLog((l) => l.msg === "opened" && l["client"] === "alice" && l["src"] === client, 5000, from);
    await t.sendSyns("other", ports);
    const replay = await waitForReplay(other, step);
    expect(stepAt(Date.now(), periodSeconds)).toBe(step); // still the same window
    expect(replay).toMatchObject({ kind: "replay", source: other, client: "alice", step, ports });

    expect(await t.probe("client", t.protectPort)).toEqual({ state: "open", data: GREETING });
    expect((await t.probe("other", t.protectPort, FILTERED_MS)).state).toBe("filtered");
    expect(t.logsSince(from).filter((l) => l.msg === "opened")).toHaveLength(1);
  }, 30_000);

  it("when a client is enrolled while the daemon runs then its IPv6 knock opens for its IPv6 address only", async () => {
    const from = t.logCount;
    await t.serverOk(["enroll", "bob", "--host", "server", "--addr", t.lab.host("server").ipv6]);
    await t.waitForLog((l) => l.msg === "clients reloaded" && l["clients"] === 2, 5000, from);
    const v6 = t.lab.host("server").ipv6;
    const { ports } = await sequenceNow("bob");
    await t.sendSyns("client", ports, 10, v6);
    await t.waitForLog((l) => l.msg === "opened" && l["client"] === "bob" && l["src"] === t.lab.host("client").ipv6, 5000, from);
    expect(await t.probe("client", t.protectPort, 1000, v6)).toEqual({ state: "open", data: GREETING });
    expect((await t.probe("other", t.protectPort, FILTERED_MS, v6)).state).toBe("filtered");
  }, 30_000);

  it("when the daemon has run then no secret from clients.json appears in its logs", () => {
    const logs = JSON.stringify(t.logsSince(0));
    const secrets = Object.values(clients().clients).map((r) => r.secret);
    expect(secrets).toHaveLength(2);
    for (const s of secrets) expect(logs).not.toContain(s.slice(0, 16));
  });
});
