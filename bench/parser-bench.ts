/**
 * Part 1b: the pcap stream parser alone (server/packets/pcap.ts) on a synthetic capture built in memory, fed in
 * 64 KiB chunks as a pipe from tcpdump delivers it. Baselines in the same run: a loop that only walks the records
 * and reads each destination port, and `tcpdump -r FILE -w /dev/null` on the same bytes (process start included).
 * Also the daemon's whole in-process path, parser + matcher (1000 clients), on the same capture.
 */
import { execFile } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PcapStreamParser } from "../server/packets/pcap.js";
import { Matcher } from "../server/matcher/matcher.js";
import { benchEpochMs, DEFAULT_MATCHER_OPTIONS, KNOCK_RANGE, makeClients } from "./matcher-bench.js";
import { median } from "./stats.js";
import { buildSynCapture, GLOBAL_HEADER_BYTES, RECORD_HEADER_BYTES, type SyntheticCapture } from "./synthetic.js";

const CHUNK_BYTES = 65_536;

export type ParserResult = {
  packets: number;
  bytes: number;
  recordBytes: number;
  parser: { pps: number; bytesPerSecond: number; runsPps: number[]; knocks: number; malformed: number };
  walkBaseline: { pps: number; bytesPerSecond: number };
  tcpdump: { pps: number; bytesPerSecond: number; runsMs: number[] } | undefined;
  /** parser pps / tcpdump -r pps (>1: the parser is faster than tcpdump reading and writing the file back). */
  ratioToTcpdump: number | undefined;
  ratioToWalk: number;
  pipeline: { clients: number; pps: number; decisions: Record<string, number>; sources: number; evictions: number };
};

function timeParser(cap: SyntheticCapture): { seconds: number; knocks: number; malformed: number } {
  let knocks = 0;
  const parser = new PcapStreamParser(() => {
    knocks++;
  });
  const data = cap.data;
  const t0 = performance.now();
  for (let off = 0; off < data.length; off += CHUNK_BYTES) parser.push(data.subarray(off, off + CHUNK_BYTES));
  parser.end();
  const t1 = performance.now();
  return { seconds: (t1 - t0) / 1000, knocks, malformed: parser.counters.malformed };
}

let sink = 0;
/** Reads only what locating a record and its port needs: the floor any parser pays. */
function timeWalk(cap: SyntheticCapture): number {
  const b = cap.data;
  const t0 = performance.now();
  let acc = 0;
  let off = GLOBAL_HEADER_BYTES;
  while (off + RECORD_HEADER_BYTES <= b.length) {
    const captured = b[off + 8]! | (b[off + 9]! << 8) | (b[off + 10]! << 16) | (b[off + 11]! << 24);
    const port = (b[off + RECORD_HEADER_BYTES + 36]! << 8) | b[off + RECORD_HEADER_BYTES + 37]!;
    if (port >= KNOCK_RANGE.min && port <= KNOCK_RANGE.max) acc++;
    off += RECORD_HEADER_BYTES + captured;
  }
  const t1 = performance.now();
  sink += acc;
  return (t1 - t0) / 1000;
}

function timeTcpdump(file: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    execFile("tcpdump", ["-n", "-r", file, "-w", "/dev/null"], { timeout: 120_000 }, (err) => {
      resolve(err ? undefined : performance.now() - t0);
    });
  });
}

export async function benchParser(opts: { packets?: number; repeats?: number; tmpDir: string; log?: (line: string) => void }): Promise<ParserResult> {
  const packets = opts.packets ?? 1_000_000;
  const repeats = opts.repeats ?? 3;
  const log = opts.log ?? (() => {});
  const startMs = benchEpochMs();
  const cap = buildSynCapture(packets, { portMin: KNOCK_RANGE.min, portMax: KNOCK_RANGE.max, seed: 7, startMs });
  const bytes = cap.data.length;

  timeParser(cap); // warm-up
  timeWalk(cap);
  const parserRuns: number[] = [];
  const walkRuns: number[] = [];
  let last = { seconds: 0, knocks: 0, malformed: 0 };
  for (let r = 0; r < repeats; r++) {
    last = timeParser(cap);
    parserRuns.push(last.seconds);
    walkRuns.push(timeWalk(cap));
  }
  const parserSeconds = median(parserRuns);
  const walkSeconds = median(walkRuns);

  const file = join(opts.tmpDir, `synthetic-${process.pid}.pcap`);
  let tcpdump: ParserResult["tcpdump"];
  try {
    writeFileSync(file, cap.data);
    const runs: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const t = await timeTcpdump(file);
      if (t !== undefined) runs.push(t);
    }
    if (runs.length > 0) {
      const s = median(runs) / 1000;
      tcpdump = { pps: packets / s, bytesPerSecond: bytes / s, runsMs: runs };
    }
  } finally {
    rmSync(file, { force: true });
  }

  // The daemon's in-process path: every parsed knock goes through the matcher.
  const clients = makeClients(1000);
  const pipelineOnce = (): { seconds: number; matcher: Matcher } => {
    const matcher = new Matcher(clients, DEFAULT_MATCHER_OPTIONS, startMs);
    const parser = new PcapStreamParser((k) => {
      matcher.onKnock(k);
    });
    const t0 = performance.now();
    for (let off = 0; off < cap.data.length; off += CHUNK_BYTES) parser.push(cap.data.subarray(off, off + CHUNK_BYTES));
    parser.end();
    return { seconds: (performance.now() - t0) / 1000, matcher };
  };
  pipelineOnce();
  const pipeRuns: number[] = [];
  let pipeLast = pipelineOnce();
  pipeRuns.push(pipeLast.seconds);
  for (let r = 1; r < repeats; r++) {
    pipeLast = pipelineOnce();
    pipeRuns.push(pipeLast.seconds);
  }
  const pstats = pipeLast.matcher.stats();

  const parserPps = packets / parserSeconds;
  const result: ParserResult = {
    packets,
    bytes,
    recordBytes: cap.recordBytes,
    parser: {
      pps: parserPps,
      bytesPerSecond: bytes / parserSeconds,
      runsPps: parserRuns.map((s) => packets / s),
      knocks: last.knocks,
      malformed: last.malformed,
    },
    walkBaseline: { pps: packets / walkSeconds, bytesPerSecond: bytes / walkSeconds },
    tcpdump,
    ratioToTcpdump: tcpdump ? parserPps / tcpdump.pps : undefined,
    ratioToWalk: parserPps / (packets / walkSeconds),
    pipeline: { clients: clients.length, pps: packets / median(pipeRuns), decisions: pstats.decisions, sources: pstats.sources, evictions: pstats.evictions },
  };
  log(
    `parser: ${(result.parser.pps / 1e6).toFixed(2)} M pkt/s, ${(result.parser.bytesPerSecond / 1e6).toFixed(0)} MB/s; tcpdump -r: ${tcpdump ? (tcpdump.pps / 1e6).toFixed(2) : "n/a"} M pkt/s; parser+matcher ${(result.pipeline.pps / 1e6).toFixed(2)} M pkt/s`,
  );
  if (sink === -1) log("");
  return result;
}
