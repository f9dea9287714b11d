/**
 * The scenarios every listener must pass in the lab (issue 12's "done when"), written once: a knock opens for its
 * source only and its replay from another host is refused and recorded; an ascending sweep of the knock range from
 * a third host opens nothing and is recorded as brute force. The lab's daemon must already run with client "alice".
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { expect } from "vitest";
import { startFlood } from "../../bench/flood-sender.js";
import { sleep, type TknockLab } from "../../lab/tknock-lab.js";

/** Sets the listener's keys in server.json, starts the protected service, enrols "alice" and starts the daemon. */
export async function startWithListener(t: TknockLab, listenerConfig: Readonly<Record<string, unknown>>): Promise<ChildProcess> {
  const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
  writeFileSync(t.configPath, JSON.stringify({ ...config, ...listenerConfig }, null, 2));
  const service = t.startService(t.protectPort);
  await t.enrollClient("alice");
  await t.startDaemon();
  return service;
}

export async function knockOpensForItsSourceOnlyAndReplayIsRefused(t: TknockLab): Promise<void> {
  const seq = JSON.parse(await t.serverOk(["sequence", "alice", "--json"])) as { ports: number[] };
  await t.sendSyns("client", seq.ports);
  await t.waitForLog((l) => l.msg === "opened" && l["client"] === "alice", 5000);
  const probe = await t.probe("client", t.protectPort);
  expect(probe.state).toBe("open");
  expect(probe.data).toContain("hello from the protected service");
  expect((await t.probe("other", t.protectPort)).state).toBe("filtered");

  await t.sendSyns("other", seq.ports);
  const deadline = Date.now() + 5000;
  let replays: unknown[] = [];
  while (Date.now() < deadline && replays.length === 0) {
    replays = (await t.replays()).filter((r) => r.kind === "replay" && r.source === t.lab.host("other").ipv4);
    if (replays.length === 0) await sleep(200);
  }
  expect(replays.length).toBe(1);
  expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
}

/** One source ("other") sends a SYN to every port of the range in ascending order (bench/flood.c, bounded). */
export async function ascendingSweepOpensNothing(t: TknockLab, range: { readonly min: number; readonly max: number }, settleMs = 500): Promise<void> {
  const other = t.lab.host("other").ipv4;
  const mark = t.logCount;
  const span = range.max - range.min + 1;
  const report = await startFlood(t.lab, "other", {
    dst: t.serverAddr,
    rate: 20_000,
    maxPackets: span,
    maxSeconds: 30,
    portRange: range,
    ascending: true,
    sources: "fixed4",
    source: other,
  }).done;
  expect(report.sent).toBe(span);
  await t.waitForLog((l) => l.msg === "brute force: many failed sequences from one source" && l["src"] === other, 5000, mark);
  await sleep(settleMs);
  expect(t.logsSince(mark).filter((l) => l.msg === "opened")).toEqual([]);
  expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
}
