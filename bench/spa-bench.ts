/**
 * Part "spa" (issue 13): SPA beside sequence knocks and beside fwknop, in one lab and one run.
 *
 * Latency, N runs per mode, interleaved run by run: a connect prober in the client host polls the protected port
 * every 1 ms, then the client runs there. A tcpdump on each server's eth0 timestamps the first knock packet as it
 * arrives and the service's SYN-ACK as it leaves, so "first packet -> connect" is the server's whole reaction.
 *   tknock-spa       `tknock NAME -q` for an SPA profile: one UDP datagram to this window's SPA port
 *   tknock-sequence  `tknock NAME -q` for a sequence profile (4 SYNs)
 *   fwknop           `fwknop -A tcp/2222 -a HOST -D SERVER --use-hmac ...` (fwknopd's defaults, UDP 62201)
 *
 * Floods, the same run: the flood sender (bench/flood.c -u) sends UDP datagrams of 60 random bytes whose first
 * byte is SPA v1's version, from spoofed sources, as fast as it goes: for tknock to random ports of the whole
 * knock range (an attacker without the secret cannot know the current SPA port), for fwknop to 62201 (which a
 * scan would reveal). Meanwhile 20 valid SPA packets from the client hosts, each watched by a prober (3 s);
 * tknock's are sealed here and sent by a perl one-liner (a node client starting on this 2-core box during
 * the flood would take CPU from the daemon it measures), fwknop's by its own C client.
 */
import { FWKNOP_INSTALL_HINT, FWKNOP_PORT, FwknopServer, fwknopClientArgv, fwknopInstalled, newFwknopKeys, type FwknopKeys } from "./fwknop.js";
import { BenchLab, KNOCK_RANGE, OPEN_SECONDS, PROTECT_PORT } from "./bench-lab.js";
import { PacketCapture, TCP_ACK, TCP_SYN, type ProbeResult, type TcpEvent } from "./capture.js";
import { buildFloodSender, startFlood, type FloodReport } from "./flood-sender.js";
import { sampleProc, softnetDrops } from "./proc.js";
import { sleep, summarize, type Summary } from "./stats.js";
import { clientProfile } from "../server/config/schema.js";
import { spaPort } from "../src/protocol/spa/keys.js";
import { sealSpaPacket } from "../src/protocol/spa/packet.js";
import { stepAt } from "../src/protocol/window.js";

export type SpaMode = "tknock-spa" | "tknock-sequence" | "fwknop";

export type SpaModeSummary = {
  runs: number;
  opened: number;
  /** Server capture: the host's first knock packet -> the service's SYN-ACK to it. */
  firstPacketToConnectMs: Summary;
  /** The client command's start (from the bench) -> the prober's connect. */
  clientStartToConnectMs: Summary;
  /** tknock only: the daemon's own knockToOpenMs. */
  knockToOpenMs?: Summary;
};

export type SpaFloodResult = {
  target: "tknock" | "fwknop";
  flood: FloodReport & { pps: number };
  knocks: number;
  connected: number;
  /** One knock a second after the flood ended opened (the daemon survived it). */
  openedAfterFlood: boolean;
  /** tknock: "opened" lines for the flood's SPA packets; fwknop: access rules it reported adding. */
  daemonOpened: number;
  daemonCpuMs: number;
  captureCpuMs?: number;
  captureKernelDrops?: number;
  /** tknock: SPA-shaped datagrams with a key id of no client (counted, never logged). */
  spaUnknown?: number;
  /** tknock: SPA refusals the daemon logged, by reason. */
  spaRefusals?: Record<string, number>;
  softnetDrops: number;
};

export type SpaBenchResult = {
  n: number;
  modes: Partial<Record<SpaMode, SpaModeSummary>>;
  flood: { tknock?: SpaFloodResult; fwknop?: SpaFloodResult };
  skipped: string[];
};

const SPA_CLIENT = "spa";
const FLOOD_PAYLOAD_BYTES = 60;
const SYN_ONLY = (e: TcpEvent): boolean => e.proto === "tcp" && (e.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
const SYN_ACK = (e: TcpEvent): boolean => e.proto === "tcp" && (e.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);

/**
 * One send(2) of exactly these bytes, from a small process (perl starts in a few ms). Not bash's /dev/udp: its
 * printf split some packets into two datagrams or lost bytes, which the daemon rightly refused as bad tags.
 */
function datagramSendArgv(bytes: Buffer, addr: string, port: number): string[] {
  const code = 'use Socket; socket(S, PF_INET, SOCK_DGRAM, 0) or die; send(S, pack("H*", $ARGV[0]), 0, sockaddr_in($ARGV[2], inet_aton($ARGV[1]))) or die';
  return ["perl", "-e", code, bytes.toString("hex"), addr, String(port)];
}

export async function benchSpa(o: {
  n: number;
  floodSeconds: number;
  floodMaxPackets: number;
  floodKnocks: number;
  log: (l: string) => void;
}): Promise<SpaBenchResult> {
  const result: SpaBenchResult = { n: o.n, modes: {}, flood: {}, skipped: [] };
  const fwknop = fwknopInstalled();
  if (!fwknop) result.skipped.push(`spa, fwknop rows: fwknop is not installed (${FWKNOP_INSTALL_HINT})`);
  let flood = true;
  try {
    buildFloodSender();
  } catch (err) {
    flood = false;
    result.skipped.push(`spa floods: cannot compile bench/flood.c (install gcc): ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
  }
  const bl = await BenchLab.create({ clientHosts: 10, knockd: false });
  const onSignal = (): void => bl.killAllSync();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let fw: FwknopServer | undefined;
  try {
    await bl.enroll([SPA_CLIENT], { mode: "spa" });
    await bl.enroll(Array.from({ length: o.n }, (_, i) => `sseq${i}`));
    const keys = newFwknopKeys();
    const daemon = await bl.startDaemon("pcap");
    if (fwknop) fw = await FwknopServer.start(bl.t.lab, "kserver", bl.t.dir, { protectPort: PROTECT_PORT, openSeconds: OPEN_SECONDS, keys });

    o.log(`spa latency: N = ${o.n}, tknock-spa, tknock-sequence${fwknop ? ", fwknop" : ""}`);
    const modes: SpaMode[] = ["tknock-spa", "tknock-sequence", ...(fwknop ? (["fwknop"] as const) : [])];
    result.modes = await latency(bl, modes, o.n, keys, daemon.logs);

    if (flood) {
      o.log(`spa flood: tknock, whole knock range, ${o.floodSeconds} s`);
      result.flood.tknock = await floodRun(bl, "tknock", o, keys);
      if (fw) {
        await bl.daemon?.stop();
        bl.daemon = undefined;
        o.log(`spa flood: fwknop, port ${FWKNOP_PORT}, ${o.floodSeconds} s`);
        result.flood.fwknop = await floodRun(bl, "fwknop", o, keys, fw);
      }
    }
  } finally {
    await fw?.stop().catch(() => undefined);
    await bl.destroy();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return result;
}

type Run = { mode: SpaMode; host: string; startMs: number; probe: ProbeResult; code: number };

async function latency(
  bl: BenchLab,
  modes: readonly SpaMode[],
  n: number,
  keys: FwknopKeys,
  daemonLogs: readonly { msg: string; [k: string]: unknown }[],
): Promise<Partial<Record<SpaMode, SpaModeSummary>>> {
  const S = bl.serverAddr;
  const K = bl.kserverAddr;
  const range = `${KNOCK_RANGE.min}-${KNOCK_RANGE.max}`;
  const synAck = (addr: string): string => `(src host ${addr} and src port ${PROTECT_PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack))`;
  const capS = await PacketCapture.start(
    bl.t.lab,
    "server",
    `(dst host ${S} and src net 198.18.0.0/24 and ((udp dst portrange ${range}) or (tcp dst portrange ${range} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn))) or ${synAck(S)}`,
  );
  const capK = modes.includes("fwknop")
    ? await PacketCapture.start(bl.t.lab, "kserver", `(dst host ${K} and udp dst port ${FWKNOP_PORT}) or ${synAck(K)}`)
    : undefined;
  const logFrom = daemonLogs.length;
  const runs: Run[] = [];
  try {
    for (let i = 0; i < n; i++) {
      for (const mode of modes) {
        const server = mode === "fwknop" ? "kserver" : "server";
        const addr = mode === "fwknop" ? K : S;
        const host = await bl.takeHost(server, 4000);
        const argv =
          mode === "fwknop"
            ? fwknopClientArgv(K, bl.t.lab.host(host).ipv4, PROTECT_PORT, keys)
            : bl.tknockArgv([mode === "tknock-spa" ? SPA_CLIENT : `sseq${i}`, "-q"]);
        const probe = bl.probers.get(host)!.probe(addr, PROTECT_PORT, 3000);
        const r = await bl.timed(host, argv);
        const p = await probe;
        bl.bookHost(server, host, p.ok ? p.atMs : Date.now());
        runs.push({ mode, host, startMs: r.startMs, probe: p, code: r.code });
      }
    }
    await sleep(300);
  } finally {
    await capS.stop();
    await capK?.stop();
  }
  const out: Partial<Record<SpaMode, SpaModeSummary>> = {};
  for (const mode of modes) {
    const mine = runs.filter((r) => r.mode === mode);
    const ok = mine.filter((r) => r.probe.ok);
    const firstToConnect: number[] = [];
    for (const r of ok) {
      const hostAddr = bl.t.lab.host(r.host).ipv4;
      const events = (mode === "fwknop" ? capK! : capS).events.filter((e) => e.atMs >= r.startMs - 5 && e.atMs <= r.probe.atMs + 5);
      const first = events.find((e) => e.src === hostAddr && (mode === "tknock-sequence" ? SYN_ONLY(e) : e.proto === "udp"));
      const answer = first && events.find((e) => e.dst === hostAddr && SYN_ACK(e) && e.atMs >= first.atMs);
      if (first && answer) firstToConnect.push(answer.atMs - first.atMs);
    }
    const opened = daemonLogs.slice(logFrom).filter((l) => l.msg === "opened" && (mode === "tknock-spa" ? l["via"] === "spa" : l["via"] === undefined));
    out[mode] = {
      runs: mine.length,
      opened: ok.length,
      firstPacketToConnectMs: summarize(firstToConnect),
      clientStartToConnectMs: summarize(ok.map((r) => r.probe.atMs - r.startMs)),
      ...(mode !== "fwknop" ? { knockToOpenMs: summarize(opened.map((l) => Number(l["knockToOpenMs"]))) } : {}),
    };
  }
  return out;
}

async function floodRun(
  bl: BenchLab,
  target: "tknock" | "fwknop",
  o: { floodSeconds: number; floodMaxPackets: number; floodKnocks: number; log: (l: string) => void },
  keys: FwknopKeys,
  fw?: FwknopServer,
): Promise<SpaFloodResult> {
  const serverHost = target === "tknock" ? "server" : "kserver";
  const serverAddr = target === "tknock" ? bl.serverAddr : bl.kserverAddr;
  // A fresh daemon, so its counters and CPU are this part's.
  const daemon = target === "tknock" ? await bl.startDaemon("pcap") : undefined;
  const daemonPid = daemon?.pid ?? fw!.pid;
  const capturePid = daemon?.tcpdumpPid(bl.ns("server"));
  const logFrom = daemon?.logs.length ?? 0;
  const openedBefore = fw?.openedCount() ?? 0;
  const before = sampleProc(daemonPid);
  const captureBefore = capturePid !== undefined ? sampleProc(capturePid) : undefined;
  const softnetBefore = softnetDrops();
  const flood = startFlood(bl.t.lab, "other", {
    dst: serverAddr,
    maxPackets: o.floodMaxPackets,
    maxSeconds: o.floodSeconds,
    ...(target === "tknock" ? { portRange: KNOCK_RANGE } : { ports: [FWKNOP_PORT] }),
    sources: "random4",
    udpPayloadBytes: FLOOD_PAYLOAD_BYTES,
    seed: target === "tknock" ? 21 : 22,
  });
  const t0 = Date.now();
  const runs: Promise<ProbeResult>[] = [];
  const spa = bl.enrolled.find((e) => e.name === SPA_CLIENT)!;
  const profile = clientProfile(SPA_CLIENT, spa.record);
  try {
    await sleep(500);
    const spacingMs = ((o.floodSeconds - 1.5) * 1000) / o.floodKnocks;
    /** One valid knock from the next free client host, watched by its prober. */
    const knock = async (host: string): Promise<ProbeResult> => {
      const hostAddr = bl.t.lab.host(host).ipv4;
      let argv: string[];
      if (target === "tknock") {
        const nowMs = Date.now();
        const step = stepAt(nowMs, profile.periodSeconds);
        const bytes = sealSpaPacket({ secret: profile.secret, step, timestampMs: nowMs, payload: { ports: [], nat: false, address: hostAddr } });
        argv = datagramSendArgv(bytes, serverAddr, spaPort(profile, step));
      } else {
        argv = fwknopClientArgv(serverAddr, hostAddr, PROTECT_PORT, keys);
      }
      const probe = bl.probers.get(host)!.probe(serverAddr, PROTECT_PORT, 3000);
      const r = await bl.timed(host, argv);
      if (r.code !== 0) o.log(`spa flood ${target}: knock from ${host} failed (${r.code}): ${r.stderr.trim().slice(0, 200)}`);
      const p = await probe;
      bl.bookHost(serverHost, host, p.ok ? p.atMs : Date.now());
      return p;
    };
    for (let k = 0; k < o.floodKnocks; k++) {
      const due = t0 + 500 + k * spacingMs;
      if (due > Date.now()) await sleep(due - Date.now());
      // Taken here, one at a time: two knocks waiting for the same host would both get it.
      runs.push(knock(await bl.takeHost(serverHost, 4000)));
    }
    const probes = await Promise.all(runs);
    const report = await flood.done;
    // The daemon is still alive and well: one knock after the flood must open.
    await sleep(1000);
    const afterFlood = await knock(await bl.takeHost(serverHost, 4000));
    if (!afterFlood.ok && fw) o.log(`spa flood fwknop: fwknopd does not open after the flood; its last output:\n${fw.tail}`);

    await sleep(2000);
    const after = sampleProc(daemonPid);
    const captureAfter = capturePid !== undefined ? sampleProc(capturePid) : undefined;
    const out: SpaFloodResult = {
      target,
      flood: { ...report, pps: report.sent / report.seconds },
      knocks: o.floodKnocks,
      connected: probes.filter((p) => p.ok).length,
      openedAfterFlood: afterFlood.ok,
      daemonOpened: 0,
      daemonCpuMs: before && after ? after.cpuMs - before.cpuMs : Number.NaN,
      softnetDrops: softnetDrops() - softnetBefore,
    };
    if (daemon) {
      out.daemonOpened = daemon.logs.slice(logFrom).filter((l) => l.msg === "opened" && l["via"] === "spa").length - (afterFlood.ok ? 1 : 0);
      out.captureCpuMs = captureBefore && captureAfter ? captureAfter.cpuMs - captureBefore.cpuMs : Number.NaN;
      const stats = await daemon.stats(bl.ns("server"));
      const listener = (stats?.["listener"] ?? {}) as Record<string, number>;
      if (listener["kernelDrops"] !== undefined) out.captureKernelDrops = listener["kernelDrops"];
      const spaStats = (stats?.["spa"] ?? {}) as Record<string, number>;
      if (spaStats["unknown"] !== undefined) out.spaUnknown = spaStats["unknown"];
      out.spaRefusals = {};
      for (const l of daemon.logs.slice(logFrom).filter((x) => x.msg === "SPA packet refused")) {
        const why = String(l["reason"]);
        out.spaRefusals[why] = (out.spaRefusals[why] ?? 0) + 1;
      }
    } else {
      out.daemonOpened = fw!.openedCount() - openedBefore - (afterFlood.ok ? 1 : 0);
    }
    o.log(
      `spa flood ${target}: ${(out.flood.pps / 1000).toFixed(0)} k pkt/s for ${report.seconds.toFixed(1)} s; ${out.connected}/${out.knocks} connected, ${out.daemonOpened} opened, after the flood ${afterFlood.ok ? "opened" : "NOT opened"}; daemon CPU ${(out.daemonCpuMs / 1000).toFixed(2)} s` +
        (out.captureKernelDrops !== undefined ? `; capture drops ${out.captureKernelDrops}` : "") +
        `; softnet drops ${out.softnetDrops}` +
        (out.spaRefusals !== undefined ? `; SPA refusals ${JSON.stringify(out.spaRefusals)}` : ""),
    );
    return out;
  } finally {
    if (flood.child.exitCode === null) flood.child.kill("SIGKILL");
    await Promise.allSettled(runs);
  }
}
