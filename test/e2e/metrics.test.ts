/**
 * The metrics endpoint with the real binaries in a namespace lab (client 198.18.0.1, server 198.18.0.2): a knock
 * that opens is counted, its grant shows in the gauge, `status --json` carries the same facts, and the endpoint
 * on loopback cannot be reached from another host.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { SERVER_BIN, sleep, TknockLab } from "../../lab/tknock-lab.js";

const METRICS = "127.0.0.1:9477";

/** The value of one series in a Prometheus text exposition. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describeAsRoot("metrics endpoint in a namespace lab", () => {
  let t: TknockLab;
  let service: ChildProcess;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: 60, extraConfig: { metrics: { listen: METRICS } } });
    service = t.startService(t.protectPort);
    await t.enrollClient("alice");
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  async function scrape(host = "server", addr = METRICS): Promise<{ code: number; text: string }> {
    const script = `fetch("http://${addr}/metrics",{signal:AbortSignal.timeout(3000)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(String(e.cause??e));process.exit(7)})`;
    const r = await t.lab.exec(host, ["node", "-e", script], { timeoutMs: 10_000 });
    return { code: r.code ?? -1, text: r.stdout };
  }

  it("when a client's knock opens then /metrics counts one open and the grant gauge is 1, and status --json agrees", async () => {
    const before = await scrape();
    expect(before.code).toBe(0);
    expect(sample(before.text, 'tknock_knocks_total{decision="open"}')).toBe(0);
    expect(sample(before.text, "tknock_gate_present")).toBe(1);

    const r = await t.client(["alice", "--wait", "10"]);
    expect(r.code, r.stderr).toBe(0);
    await t.waitForLog((l) => l.msg === "opened", 5000);

    const after = await scrape();
    expect(sample(after.text, 'tknock_knocks_total{decision="open"}')).toBe(1);
    expect(sample(after.text, "tknock_grants_active")).toBe(1);
    expect(sample(after.text, 'tknock_listener_knock_candidates_total{listener="pcap"}')).toBeGreaterThanOrEqual(4);
    expect(sample(after.text, 'tknock_firewall_update_seconds_count{result="ok"}')).toBe(1);
    expect(sample(after.text, 'tknock_state_write_seconds_count{result="ok"}')).toBe(1);
    expect(sample(after.text, 'tknock_capture_up{listener="pcap"}')).toBe(1);
    expect(after.text).toContain("process_resident_memory_bytes");

    // daemon.json is rewritten every 3 s.
    let status: { activity?: { knocks: Record<string, number>; lastOpenAt: string | null }; capture: { state: string; since: string | null } } | undefined;
    for (let i = 0; i < 30 && status?.activity?.knocks["open"] !== 1; i++) {
      status = JSON.parse(await t.serverOk(["status", "--json"])) as typeof status;
      if (status?.activity?.knocks["open"] !== 1) await new Promise((res) => setTimeout(res, 200));
    }
    expect(status?.activity?.knocks["open"]).toBe(1);
    expect(status?.activity?.lastOpenAt).toEqual(expect.any(String));
    expect(status?.capture).toMatchObject({ state: "capturing", since: expect.any(String) as unknown });
  }, 60_000);

  it("when another host asks for /metrics on the server's address then it gets no answer (loopback only)", async () => {
    const r = await scrape("client", `${t.serverAddr}:9477`);
    expect(r.code).toBe(7);
    expect(r.text).toBe("");
  });

  it("when stdout is the journal's stream and metrics listen beyond loopback then every line carries its priority, the warning <4>, and another host can scrape", async () => {
    await t.stopDaemon();
    const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(t.configPath, JSON.stringify({ ...config, metrics: { listen: `${t.serverAddr}:9477` } }));
    // systemd sets JOURNAL_STREAM to the device and inode of the stream it gives as stdout: a file stands in for it.
    const out = join(t.dir, "journal-stream.out");
    writeFileSync(out, "");
    const st = statSync(out);
    const daemon = t.lab.spawn("server", ["sh", "-c", 'exec node "$0" --config "$1" run >>"$2"', SERVER_BIN, t.configPath, out], {
      env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    });
    try {
      const deadline = Date.now() + 15_000;
      while (!readFileSync(out, "utf8").includes("tcpdump capturing") && Date.now() < deadline && daemon.exitCode === null) await sleep(100);
      const lines = readFileSync(out, "utf8")
        .split("\n")
        .filter((l) => l !== "");
      expect(lines.length).toBeGreaterThan(2);
      for (const line of lines) expect(line).toMatch(/^<[2-7]>\{"level":/);
      expect(lines.find((l) => l.includes("non-loopback"))).toMatch(/^<4>/);
      expect(lines.find((l) => l.includes("tknock-server running"))).toMatch(/^<6>/);
      const scraped = await scrape("client", `${t.serverAddr}:9477`);
      expect(scraped.code).toBe(0);
      expect(sample(scraped.text, "tknock_gate_present")).toBe(1);
      const clients = JSON.parse(readFileSync(join(t.dir, "etc/clients.json"), "utf8")) as { clients: Record<string, { secret: string }> };
      for (const c of Object.values(clients.clients)) expect(readFileSync(out, "utf8")).not.toContain(c.secret.slice(0, 16));
    } finally {
      daemon.kill("SIGTERM");
      if (daemon.exitCode === null) await new Promise((res) => daemon.once("exit", res));
    }
  }, 60_000);
});
