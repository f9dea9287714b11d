/**
 * The pcap listener's restart policy against a stand-in tcpdump (a shell script that fails, captures or hangs as
 * the test asks), so the timing of restarts and health() can be checked without a network.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPcapListener, type LogLevel, type PcapListener } from "../../server/listeners/pcap/listener.js";
import { sleep, waitFor } from "../support/wait.js";

type LogLine = { level: LogLevel; message: string; fields: Record<string, unknown> };

describe("pcap listener restarts", () => {
  let dir: string;
  let stops: (() => Promise<void>)[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-fake-tcpdump-"));
    stops = [];
  });
  afterEach(async () => {
    for (const stop of stops) await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A tcpdump stand-in: its first `failFirst` runs exit 1 at once; later runs capture (or hang silently). */
  function fakeTcpdump(opts: { failFirst: number; hang?: boolean }): string {
    const path = join(dir, "tcpdump");
    const count = join(dir, "count");
    const capture =
      opts.hang === true ? "exec sleep 60" : `echo "listening on fake0, link-type EN10MB (Ethernet), snapshot length 128 bytes" >&2\nexec sleep 60`;
    writeFileSync(
      path,
      `#!/bin/sh\nn=$(cat ${count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${count}\nif [ $n -le ${opts.failFirst} ]; then echo "fake0: No such device exists" >&2; exit 1; fi\n${capture}\n`,
    );
    chmodSync(path, 0o755);
    return path;
  }

  function start(tcpdumpPath: string, extra: { stableMs?: number; startTimeoutMs?: number } = {}): { listener: PcapListener; logs: LogLine[] } {
    const logs: LogLine[] = [];
    const listener = createPcapListener({
      interface: "fake0",
      knockRange: { min: 40000, max: 40099 },
      localAddresses: ["198.18.0.2"],
      tcpdumpPath,
      log: (level, message, fields) => logs.push({ level, message, fields }),
      backoff: { initialMs: 50, maxMs: 5000, stableMs: extra.stableMs ?? 300 },
      ...(extra.startTimeoutMs !== undefined ? { startTimeoutMs: extra.startTimeoutMs } : {}),
    });
    const ac = new AbortController();
    const running = listener.run(() => {}, ac.signal);
    stops.push(async () => {
      ac.abort();
      await running;
    });
    return { listener, logs };
  }

  const restartDelays = (logs: LogLine[]): unknown[] => logs.filter((l) => l.message === "tcpdump exited; restarting it").map((l) => l.fields["restartInMs"]);

  it("when tcpdump fails repeatedly then health counts the failed starts and names the last problem", async () => {
    const { listener } = start(fakeTcpdump({ failFirst: 1000 }));
    await waitFor("three failed starts", () => listener.health().failedStarts >= 3);
    expect(listener.health()).toMatchObject({ capturing: false, lastProblem: expect.stringContaining("No such device") });
  });

  it("when tcpdump recovers and then captures for stableMs then a kill restarts it after the initial delay, not the grown one", async () => {
    const { listener, logs } = start(fakeTcpdump({ failFirst: 4 }));
    await waitFor("capturing", () => listener.health().capturing);
    expect(restartDelays(logs)).toEqual([50, 100, 200, 400]);
    expect(listener.health().failedStarts).toBe(4);
    await sleep(400); // longer than stableMs: a recovery
    process.kill(listener.captureState().pid as number, "SIGKILL");
    await waitFor("restart logged", () => restartDelays(logs).length === 5);
    expect(restartDelays(logs)[4]).toBe(50);
    expect(listener.health().failedStarts).toBe(0);
    await waitFor("capturing again", () => listener.health().capturing);
  });

  it("when tcpdump is killed right after it started capturing then the delay keeps growing (a flapping capture is not a recovery)", async () => {
    const { listener, logs } = start(fakeTcpdump({ failFirst: 0 }), { stableMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      await waitFor("capturing", () => listener.health().capturing);
      process.kill(listener.captureState().pid as number, "SIGKILL");
      await waitFor("restart logged", () => restartDelays(logs).length === i + 1);
    }
    expect(restartDelays(logs)).toEqual([50, 100, 200]);
  });

  it("when tcpdump never says listening on then it is stopped after startTimeoutMs and restarted", async () => {
    const { listener, logs } = start(fakeTcpdump({ failFirst: 0, hang: true }), { startTimeoutMs: 200 });
    await waitFor("a restart", () => restartDelays(logs).length >= 1);
    expect(logs.find((l) => l.message === "tcpdump exited; restarting it")?.fields["reason"]).toMatch(/did not start capturing within 200 ms/);
    expect(listener.health()).toMatchObject({ capturing: false, failedStarts: 1 });
  });
});
