/**
 * The log listener's child-process sources, with stand-in programs: a "journalctl" that prints the journal.jsonl
 * fixture (journald does not run on the machines these tests run on) and a kmsg device that is a plain file.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogListener } from "../../server/listeners/log/listener.js";
import type { ObservedKnock } from "../../src/ports.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/log");

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("log listener, child sources", () => {
  let dir: string;
  let stop: AbortController;
  let running: Promise<void> | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-logchild-"));
    stop = new AbortController();
  });
  afterEach(async () => {
    stop.abort();
    await running;
    rmSync(dir, { recursive: true, force: true });
  });

  it("when journalctl prints kernel messages as JSON then knocks carry the journal's time, and a journalctl that exits is restarted", async () => {
    const fake = join(dir, "journalctl");
    writeFileSync(fake, `#!/bin/sh\ncat ${join(FIXTURES, "journal.jsonl")}\necho 'not json'\nexit 1\n`);
    chmodSync(fake, 0o755);
    const knocks: ObservedKnock[] = [];
    const listener = createLogListener({
      source: "journald",
      journalctlPath: fake,
      knockRange: { min: 40000, max: 40999 },
      backoff: { initialMs: 20, maxMs: 40 },
    });
    running = listener.run((k) => knocks.push(k), stop.signal);
    await until(() => listener.stats().starts >= 3 && knocks.length >= 8 && listener.stats().malformed >= 2);
    expect(knocks.slice(0, 4)).toEqual([
      { src: "198.18.0.2", dstPort: 40001, proto: "tcp", atMs: 1796188464123 },
      { src: "fd18:18::2", dstPort: 40002, proto: "tcp", atMs: 1796188464124 },
      { src: "198.18.0.2", dstPort: 40003, proto: "udp", atMs: 1796188464125 },
      { src: "fd18:18::2", dstPort: 40004, proto: "udp", atMs: 1796188464128 },
    ]);
    expect(listener.stats().malformed).toBeGreaterThanOrEqual(2);
    expect(listener.health().failedStarts).toBeGreaterThanOrEqual(1);
    expect(listener.health().lastProblem).toMatch(/exited \(1\)/);
  });

  it("when journalctl cannot be started then the listener keeps retrying and says why, without throwing", async () => {
    const listener = createLogListener({
      source: "journald",
      journalctlPath: join(dir, "none"),
      knockRange: { min: 1, max: 65535 },
      backoff: { initialMs: 20, maxMs: 40 },
    });
    running = listener.run(() => {}, stop.signal);
    await until(() => listener.stats().starts >= 3);
    expect(listener.health()).toMatchObject({ capturing: false, lastProblem: expect.stringContaining("ENOENT") });
  });

  it("when kmsg holds records from before the start and after it then only the later ones are knocks, dated by boot time plus their microseconds", async () => {
    const kmsg = join(dir, "kmsg");
    const nowUs = Number(process.hrtime.bigint() / 1000n);
    const [old, fresh] = readFileSync(join(FIXTURES, "kmsg.txt"), "utf8").split("\n") as [string, string];
    const at = (rec: string, us: number): string => rec.replace(/^(\d+,\d+,)\d+/, `$1${us}`);
    writeFileSync(kmsg, `${at(old, nowUs - 60_000_000)}\n${at(fresh, nowUs + 500_000)}\n SUBSYSTEM=net\n`);
    const knocks: ObservedKnock[] = [];
    const listener = createLogListener({ source: "kmsg", kmsgPath: kmsg, knockRange: { min: 40000, max: 40999 }, nowMs: () => 4_000_000_000_000 });
    running = listener.run((k) => knocks.push(k), stop.signal);
    await until(() => knocks.length === 1);
    expect(knocks[0]).toMatchObject({ src: "fd18:18::2", dstPort: 40002, proto: "tcp" });
    const expectedMs = Date.now() - Number(process.hrtime.bigint() / 1000n) / 1000 + (nowUs + 500_000) / 1000;
    expect(Math.abs((knocks[0] as ObservedKnock).atMs - expectedMs)).toBeLessThan(50);
  });
});
