/** The log listener's file source on real files: rotation by rename and by truncation, late files, partial lines. */
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogListener } from "../../server/listeners/log/listener.js";
import { LineSplitter } from "../../server/listeners/log/line-splitter.js";
import type { ObservedKnock } from "../../src/ports.js";

const LINES = readFileSync(join(import.meta.dirname, "../fixtures/log/lines.txt"), "utf8")
  .split("\n")
  .filter((l) => l !== "");
/** A real "tknock: " line with its destination port set to `port`, as syslog writes it to a file. */
const knockLine = (port: number): string => `Dec  2 05:14:24 lab kernel: ${(LINES[0] as string).replace(/DPT=\d+/, `DPT=${port}`)}\n`;

async function until(what: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("log listener, file source", () => {
  let dir: string;
  let path: string;
  let knocks: ObservedKnock[];
  let stop: AbortController;
  let listener: ReturnType<typeof createLogListener>;
  let running: Promise<void>;

  const start = (): void => {
    listener = createLogListener({ source: `file:${path}`, knockRange: { min: 40000, max: 40999 }, requirePrefix: "tknock: " });
    running = listener.run((k) => knocks.push(k), stop.signal);
  };
  const ports = (): number[] => knocks.map((k) => k.dstPort);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-follow-"));
    path = join(dir, "kern.log");
    knocks = [];
    stop = new AbortController();
  });
  afterEach(async () => {
    stop.abort();
    await running;
    rmSync(dir, { recursive: true, force: true });
  });

  it("when the file exists at start then old lines are not replayed and appended knocks are seen with their source, port and proto", async () => {
    writeFileSync(path, knockLine(40001));
    start();
    appendFileSync(path, knockLine(40002));
    await until(() => knocks.length === 1);
    expect(knocks[0]).toMatchObject({ src: "198.18.0.2", dstPort: 40002, proto: "tcp" });
    expect(Math.abs((knocks[0] as ObservedKnock).atMs - Date.now())).toBeLessThan(3000);
  });

  it("when the file is rotated by rename then the rest of the old file and then the new file from its start are read", async () => {
    writeFileSync(path, "");
    start();
    appendFileSync(path, knockLine(40001));
    await until(() => knocks.length === 1);
    appendFileSync(path, knockLine(40002));
    renameSync(path, `${path}.1`);
    writeFileSync(path, knockLine(40003));
    await until(() => knocks.length === 3);
    expect(ports()).toEqual([40001, 40002, 40003]);
  });

  it("when the file is truncated (copytruncate) then reading starts again at its beginning", async () => {
    writeFileSync(path, "");
    start();
    appendFileSync(path, knockLine(40001) + knockLine(40002));
    await until(() => knocks.length === 2);
    truncateSync(path, 0);
    await new Promise((r) => setTimeout(r, 400));
    appendFileSync(path, knockLine(40003));
    await until(() => knocks.length === 3);
    expect(ports()).toEqual([40001, 40002, 40003]);
  });

  it("when the file appears after the start then it is read from its beginning", async () => {
    start();
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(path, knockLine(40004));
    await until(() => knocks.length === 1);
    expect(ports()).toEqual([40004]);
  });

  it("when a line is written in two parts then it is one knock once its newline arrives", async () => {
    writeFileSync(path, "");
    start();
    const line = knockLine(40005);
    appendFileSync(path, line.slice(0, 60));
    await new Promise((r) => setTimeout(r, 400));
    expect(knocks).toEqual([]);
    appendFileSync(path, line.slice(60));
    await until(() => knocks.length === 1);
    expect(ports()).toEqual([40005]);
  });

  it("when lines are not knocks (other text, another prefix, a port outside the range) then they are counted and skipped", async () => {
    writeFileSync(path, "");
    start();
    appendFileSync(path, "Dec  2 05:14:24 lab kernel: usb 1-1: new device\n");
    appendFileSync(path, knockLine(40006).replace("tknock: ", "other: "));
    appendFileSync(path, knockLine(50000));
    appendFileSync(path, knockLine(40007));
    await until(() => knocks.length === 1);
    expect(ports()).toEqual([40007]);
    expect(listener.stats()).toMatchObject({ packets: 4, knocks: 1, malformed: 3 });
  });
});

describe("line splitter", () => {
  it("when a line grows beyond the limit then it is dropped once, skipped to its newline, and memory stays bounded", () => {
    const out: string[] = [];
    let overlong = 0;
    const s = new LineSplitter(
      (l) => out.push(l),
      () => overlong++,
      100,
    );
    s.push("short\n");
    for (let i = 0; i < 1000; i++) s.push("y".repeat(1000));
    s.push("tail of the long one\nnext\n");
    expect(out).toEqual(["short", "next"]);
    expect(overlong).toBe(1);
  });
});
