/**
 * Spoofed knocks in the lab (issue 9): a third host ("other") sends raw SYNs with the client's source address to
 * random ports of the knock range, 1000 a second, while the real client knocks 20 times with its defaults; and
 * one source sweeps the whole range in ascending order. Real `tknock-server run` and `tknock`, default matcher
 * settings (toleratedWrongKnocks 4, docs/protocol.md section 6). The flood sender is bench/flood.c, every run
 * bounded in packets and seconds.
 *
 * `npm test` runs this file on its own, after the others: on 2 cores, another lab suite beside it can hold the
 * client process off the CPU for milliseconds between two of its connect() calls, and at 1000 spoofed packets a
 * second that lets more than W of them land inside a sequence. That measures the load, not the rule.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildFloodSender, startFlood } from "../../bench/flood-sender.js";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";
import { ascendingSweepOpensNothing } from "./listener-scenarios.js";

const KNOCKS = 20;
/** Each client may use steps T and T+1 of a window: 10 clients give 20 knocks without waiting for a window. */
const CLIENTS = 10;
const RANGE = { min: 10000, max: 59999 };

describeAsRoot("end to end: spoofed knocks and sweeps", () => {
  let t: TknockLab;

  beforeAll(async () => {
    buildFloodSender();
    t = await TknockLab.create({ openSeconds: 5 });
    for (let i = 0; i < CLIENTS; i++) await t.enrollClient(`c${i}`);
    await t.startDaemon();
  }, 120_000);

  afterAll(async () => {
    await t?.destroy();
  });

  it("when 1000 spoofed SYNs a second from the client's address hit the knock range then at least 19 of 20 real knocks open", async () => {
    const client = t.lab.host("client").ipv4;
    const mark = t.logCount;
    const flood = startFlood(t.lab, "other", {
      dst: t.serverAddr,
      rate: 1000,
      maxPackets: 120_000,
      maxSeconds: 120,
      portRange: RANGE,
      sources: "fixed4",
      source: client,
    });
    let report;
    const codes: number[] = [];
    const startedMs = Date.now();
    try {
      await sleep(500); // the flood is running before the first knock
      for (let i = 0; i < KNOCKS; i++) codes.push((await t.client([`c${i % CLIENTS}`])).code);
      await sleep(500); // the last knocks reach the daemon while the flood still runs
    } finally {
      report = await flood.stop();
    }
    const seconds = (Date.now() - startedMs) / 1000;
    expect(codes.every((c) => c === 0)).toBe(true);
    // The flood really ran at about 1000 a second for the whole time...
    expect(report.sent).toBeGreaterThan(0.9 * 1000 * seconds);
    // ...and its packets reached the matcher as wrong knocks from the client's address.
    await t.waitForLog((l) => l.msg === "brute force: many failed sequences from one source" && l["src"] === client, 5000, mark);
    await sleep(500);
    const opened = t.logsSince(mark).filter((l) => l.msg === "opened" && l["src"] === client);
    expect(opened.length).toBeGreaterThanOrEqual(KNOCKS - 1);
  }, 120_000);

  it("when one source sweeps the whole knock range in ascending order then nothing opens and it is reported as brute force", async () => {
    await ascendingSweepOpensNothing(t, RANGE, 1000);
  }, 60_000);
});
