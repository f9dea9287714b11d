/**
 * Part 2 (and the knockd half of part 5): knock-to-open latency in the lab, N runs per mode.
 *
 * Every run: a connect prober in the client host polls the protected port with a fresh connection every 1 ms;
 * then the knock client runs in the same host. A tcpdump on each server's eth0 timestamps the knock SYNs as they
 * arrive and the service's SYN-ACKs as they leave (the kernel's clock, shared by all namespaces), so
 *   first knock -> connect  = first SYN-ACK to that host - its first knock SYN
 *   last knock  -> connect  = first SYN-ACK - its last knock SYN (the server's reaction, to within the 1 ms poll)
 * and the tknock daemon's own "opened" line gives knockToOpenMs (last knock's capture time to the nft grant
 * acknowledged) and firewallMs.
 * Modes (interleaved run by run, so load drift hits all alike):
 *   tknock       `tknock NAME --delay 0 -q`      (fresh client per run: a step is accepted once per client)
 *   tknock-knock the same tknock knock (current step's ports, computed here) sent by knockd's `knock -d 0`:
 *                identical client behaviour for both daemons, so the difference is the server's
 *   knockd       `knock -d 0 ADDR p1 p2 p3 p4`
 *   tknock-wait  `tknock NAME --wait 3 --delay 0 -q`: the whole command, process start included; no prober,
 *                the client's own poll finds the open port.
 */
import { KNOCK_RANGE, OPEN_SECONDS, PROTECT_PORT, type BenchLab } from "./bench-lab.js";
import { PacketCapture, TCP_ACK, TCP_SYN, type ProbeResult, type TcpEvent } from "./capture.js";
import { KNOCKD_SEQUENCE } from "./knockd.js";
import { summarize, type Summary } from "./stats.js";

export type LatencyMode = "tknock" | "tknock-knock" | "knockd" | "tknock-wait";

export type LatencyRun = {
  mode: LatencyMode;
  host: string;
  client?: string;
  code: number;
  /** Wall time of the knock command from the bench (process start and `ip netns exec` included). */
  commandMs: number;
  knocksSeen: number;
  firstKnockToConnectMs?: number;
  lastKnockToConnectMs?: number;
  /** tknock only: from the daemon's "opened" line. */
  knockToOpenMs?: number;
  firewallMs?: number;
  probeOk?: boolean;
  error?: string;
};

export type ModeSummary = {
  runs: number;
  opened: number;
  firstKnockToConnectMs: Summary;
  lastKnockToConnectMs: Summary;
  commandMs: Summary;
  knockToOpenMs?: Summary;
  firewallMs?: Summary;
};

export type LatencyResult = { n: number; proberIntervalMs: number; modes: Partial<Record<LatencyMode, ModeSummary>>; runs: LatencyRun[] };

const SYN_ONLY = (e: TcpEvent): boolean => (e.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
const SYN_ACK = (e: TcpEvent): boolean => (e.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);

function captureFilter(serverAddr: string): string {
  return `tcp and ((dst host ${serverAddr} and dst portrange ${KNOCK_RANGE.min}-${KNOCK_RANGE.max} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or (src host ${serverAddr} and src port ${PROTECT_PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)))`;
}

type Pending = LatencyRun & { serverAddr: string; hostAddr: string; startMs: number; endMs: number };

/** Client names per mode (enrolled by the caller before the daemon starts); each is used once. */
export function latencyClientNames(n: number, prefix = ""): Record<"tknock" | "tknock-knock" | "tknock-wait", string[]> {
  const names = (p: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}${p}${i}`);
  return { tknock: names("lat"), "tknock-knock": names("latk"), "tknock-wait": names("wait") };
}

export async function benchLatency(
  bl: BenchLab,
  o: {
    n: number;
    tknock: boolean;
    knockd: boolean;
    knockClient: boolean;
    log: (l: string) => void;
    /** Only these modes (default: every mode the flags allow). */
    only?: readonly LatencyMode[];
    /** Client names per mode (default latencyClientNames(n)); a second run against the same state needs fresh ones. */
    names?: ReturnType<typeof latencyClientNames>;
  },
): Promise<LatencyResult> {
  const names = o.names ?? latencyClientNames(o.n);
  const allowed: LatencyMode[] = [
    ...(o.tknock ? (["tknock"] as const) : []),
    ...(o.tknock && o.knockClient ? (["tknock-knock"] as const) : []),
    ...(o.knockd ? (["knockd"] as const) : []),
    ...(o.tknock ? (["tknock-wait"] as const) : []),
  ];
  const modes = o.only ? allowed.filter((m) => o.only!.includes(m)) : allowed;
  const caps: PacketCapture[] = [];
  const pending: Pending[] = [];
  const daemonLogFrom = bl.daemon?.logs.length ?? 0;
  try {
    if (o.tknock) caps.push(await PacketCapture.start(bl.t.lab, "server", captureFilter(bl.serverAddr)));
    if (o.knockd) caps.push(await PacketCapture.start(bl.t.lab, "kserver", captureFilter(bl.kserverAddr)));
    for (let i = 0; i < o.n; i++) {
      for (const mode of modes) pending.push(await oneRun(bl, mode, i, names));
      if ((i + 1) % 10 === 0) o.log(`latency: ${i + 1}/${o.n} rounds`);
    }
    await new Promise((r) => setTimeout(r, 300)); // last packets reach the capture
  } finally {
    for (const c of caps) await c.stop();
  }
  const events = caps.flatMap((c) => c.events).sort((a, b) => a.atMs - b.atMs);
  const opened = new Map<string, { knockToOpenMs: number; firewallMs: number }>();
  for (const l of bl.daemon?.logs.slice(daemonLogFrom) ?? []) {
    if (l.msg === "opened" && typeof l["client"] === "string")
      opened.set(l["client"], { knockToOpenMs: Number(l["knockToOpenMs"]), firewallMs: Number(l["firewallMs"]) });
  }
  const runs = pending.map((p) => finishRun(p, events, opened));
  const result: LatencyResult = { n: o.n, proberIntervalMs: 1, modes: {}, runs };
  for (const mode of modes) {
    const rs = runs.filter((r) => r.mode === mode);
    const ok = rs.filter((r) => r.firstKnockToConnectMs !== undefined);
    const s: ModeSummary = {
      runs: rs.length,
      opened: ok.length,
      firstKnockToConnectMs: summarize(ok.map((r) => r.firstKnockToConnectMs!)),
      lastKnockToConnectMs: summarize(ok.map((r) => r.lastKnockToConnectMs!)),
      commandMs: summarize(rs.filter((r) => r.code === 0).map((r) => r.commandMs)),
    };
    if (mode !== "knockd") {
      s.knockToOpenMs = summarize(rs.flatMap((r) => (r.knockToOpenMs !== undefined ? [r.knockToOpenMs] : [])));
      s.firewallMs = summarize(rs.flatMap((r) => (r.firewallMs !== undefined ? [r.firewallMs] : [])));
    }
    result.modes[mode] = s;
    o.log(
      `latency ${mode}: ${ok.length}/${rs.length} opened; first knock -> connect median ${s.firstKnockToConnectMs.median.toFixed(2)} ms, p90 ${s.firstKnockToConnectMs.p90.toFixed(2)} ms`,
    );
  }
  return result;
}

async function oneRun(bl: BenchLab, mode: LatencyMode, i: number, names: ReturnType<typeof latencyClientNames>): Promise<Pending> {
  const server = mode === "knockd" ? "kserver" : "server";
  const serverAddr = mode === "knockd" ? bl.kserverAddr : bl.serverAddr;
  const host = await bl.takeHost(server);
  const hostAddr = bl.t.lab.host(host).ipv4;
  const client = mode === "knockd" ? undefined : names[mode][i]!;
  const prober = bl.probers.get(host)!;
  let probe: Promise<ProbeResult> | undefined;
  if (mode !== "tknock-wait") probe = prober.probe(serverAddr, PROTECT_PORT, 3000);
  const argv =
    mode === "knockd"
      ? ["knock", "-d", "0", serverAddr, ...KNOCKD_SEQUENCE.map(String)]
      : mode === "tknock-knock"
        ? ["knock", "-d", "0", serverAddr, ...bl.currentPorts(client!).map(String)]
        : bl.tknockArgv(mode === "tknock" ? [client!, "--delay", "0", "-q"] : [client!, "--wait", "3", "--delay", "0", "-q"]);
  const r = await bl.timed(host, argv);
  const p = probe ? await probe : undefined;
  const endMs = Date.now();
  // The grant lives openSeconds from when it was made; book the host until it is surely gone.
  bl.bookHost(server, host, p?.ok === true ? p.atMs : endMs);
  const run: Pending = {
    mode,
    host,
    ...(client !== undefined ? { client } : {}),
    code: r.code,
    commandMs: r.wallMs,
    knocksSeen: 0,
    serverAddr,
    hostAddr,
    startMs: r.startMs,
    endMs: Math.max(endMs, p?.atMs ?? 0) + 5,
  };
  if (p !== undefined) run.probeOk = p.ok;
  if (r.code !== 0) run.error = r.stderr.trim().split("\n").pop() ?? `exit ${r.code}`;
  return run;
}

function finishRun(p: Pending, events: readonly TcpEvent[], opened: Map<string, { knockToOpenMs: number; firewallMs: number }>): LatencyRun {
  const inRun = events.filter((e) => e.atMs >= p.startMs - 5 && e.atMs <= p.endMs + OPEN_SECONDS * 1000);
  const knocks = inRun.filter((e) => SYN_ONLY(e) && e.src === p.hostAddr && e.dst === p.serverAddr && e.atMs <= p.endMs);
  const { serverAddr, hostAddr, startMs, endMs, ...run } = p;
  run.knocksSeen = knocks.length;
  if (knocks.length > 0) {
    const first = knocks[0]!.atMs;
    const last = knocks[knocks.length - 1]!.atMs;
    const synAck = inRun.find((e) => SYN_ACK(e) && e.src === serverAddr && e.dst === hostAddr && e.srcPort === PROTECT_PORT && e.atMs >= first);
    if (synAck !== undefined && synAck.atMs <= endMs) {
      run.firstKnockToConnectMs = synAck.atMs - first;
      run.lastKnockToConnectMs = synAck.atMs - last;
    }
  }
  const o = p.client !== undefined ? opened.get(p.client) : undefined;
  if (o !== undefined) {
    run.knockToOpenMs = o.knockToOpenMs;
    run.firewallMs = o.firewallMs;
  }
  return run;
}
