/**
 * The tcpdump command line and its BPF filter, as pure functions (tested byte for byte). The kernel runs the
 * filter on every packet before tcpdump sees it, so what it rejects costs neither a copy nor a wake-up.
 */
import { isIP } from "node:net";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import { TknockError } from "../../../src/errors.js";
import { isPort } from "../../../src/port-number.js";

export type KnockRange = { readonly min: number; readonly max: number };

export type CaptureFilterOptions = {
  /** Addresses of this host: only packets addressed to one of them can be knocks (forwarded traffic is not). */
  readonly localAddresses: readonly string[];
  readonly knockRange: KnockRange;
};

export type TcpdumpArgvOptions = CaptureFilterOptions & {
  /** Interface name, or "any". */
  readonly interface: string;
  readonly tcpdumpPath: string;
  /** Wraps the command (e.g. ["ip", "netns", "exec", "ns1"]); empty by default. */
  readonly argvPrefix: readonly string[];
  readonly snaplen: number;
  readonly bufferKiB: number;
  /** Read this NFLOG group (`-i nflog:N`) instead of capturing on `interface`. */
  readonly nflogGroup?: number | undefined;
};

function invalid(message: string): TknockError {
  return new TknockError("TKNOCK_INVALID_CAPTURE", message);
}

/** "fe80::1%eth0" -> "fe80::1": libpcap takes the bare address; the interface already scopes the capture. */
function withoutZone(address: string): string {
  const i = address.indexOf("%");
  return i < 0 ? address : address.slice(0, i);
}

/** Validated, zone-free, de-duplicated addresses, in the given order. */
export function normalizeLocalAddresses(addresses: readonly string[]): string[] {
  const seen = new Set<string>();
  for (const raw of addresses) {
    const a = withoutZone(raw.trim()).toLowerCase();
    if (isIP(a) === 0) throw invalid(`local address "${raw}" is not an IPv4 or IPv6 address`);
    seen.add(a);
  }
  return [...seen];
}

function checkRange(r: KnockRange): void {
  if (!isPort(r.min) || !isPort(r.max) || r.min > r.max) {
    throw invalid(`knock range ${r.min}-${r.max} is not a port range (1..65535, min <= max)`);
  }
}

/**
 * Packets to this host's addresses that can be knocks: TCP with SYN and without ACK, FIN or RST (the parser's
 * rule, server/packets/ip.ts), or UDP, to a port of the
 * knock range. Addressing the host's own addresses is what keeps forwarded traffic out; the direction is left to
 * tcpdump's `-Q in` (see buildTcpdumpArgv), not to BPF `inbound`: on a named interface libpcap compiles `inbound`
 * to a Linux ancillary load that its userland copy of the filter cannot run, and libpcap runs that copy on the
 * first ring block after attaching the filter, so the first knocks after every (re)start would be lost.
 *
 * IPv6 TCP flags: libpcap's `tcp[...]` only applies to IPv4, so the IPv6 branch reads the flags at ip6[53]
 * (40-byte header + 13). That offset is only right without extension headers, which is exactly what libpcap's
 * IPv6 `portrange` matches (next header = TCP), so the check is exact and SYN-ACKs/ACKs to the range are dropped in
 * the kernel for both families. A knock carrying IPv6 extension headers is not captured (no knock client sends one).
 *
 * VLAN: on Linux the kernel strips the 802.1Q tag before the filter runs (libpcap puts it back in the captured
 * bytes), so this filter also matches tagged packets on the parent interface; no `vlan` clause is needed.
 */
export function buildCaptureFilter(options: CaptureFilterOptions): string {
  const addresses = normalizeLocalAddresses(options.localAddresses);
  if (addresses.length === 0) throw invalid("no local address to capture for");
  checkRange(options.knockRange);
  const hosts = addresses.map((a) => `dst host ${a}`).join(" or ");
  const range = `${options.knockRange.min}-${options.knockRange.max}`;
  return (
    `(${hosts}) and (` +
    `(ip and tcp dst portrange ${range} and tcp[tcpflags] & (tcp-syn|tcp-ack|tcp-fin|tcp-rst) == tcp-syn)` +
    ` or (ip6 and ip6[6] == 6 and tcp dst portrange ${range} and ip6[53] & 0x17 == 0x02)` +
    ` or udp dst portrange ${range})`
  );
}

/**
 * `tcpdump -i IF -Q in -n -p -U -w - -s SNAPLEN -B KIB --immediate-mode FILTER`:
 * -U and --immediate-mode hand each packet over at once (libpcap's default waits for a ring block to time out,
 * which is what makes knockd's latency bimodal); -Q in keeps only packets this host receives (libpcap checks the
 * direction the kernel reports; belt and braces, as Linux sends packets for its own addresses over loopback,
 * whose outgoing copy libpcap hides anyway); -p because a knock daemon has no business making the NIC promiscuous (packets for this host
 * arrive anyway); -B sizes the kernel ring, what absorbs a flood's bursts.
 */
export function buildTcpdumpArgv(options: TcpdumpArgvOptions): string[] {
  if (options.nflogGroup !== undefined) return buildNflogTcpdumpArgv(options);
  const ifname = options.interface;
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname) || ifname.startsWith("-")) throw invalid(`interface "${ifname}" is not an interface name`);
  checkCaptureOptions(options);
  return [...options.argvPrefix, options.tcpdumpPath, "-i", ifname, "-Q", "in", "-n", "-p", ...pipeArgs(options), buildCaptureFilter(options)];
}

/**
 * `tcpdump -i nflog:N -n -U -w - -s SNAPLEN -B KIB --immediate-mode`, no filter and no -Q: libpcap can neither
 * compile a filter for the NFLOG link type ("NFLOG link-layer type filtering not implemented") nor set a direction
 * on it. Neither is needed: the gate's rule logs only knock-range packets arriving at this host (input hook), and
 * the parser keeps only SYNs and UDP. -B sizes the netlink socket's receive buffer, what absorbs a flood's bursts.
 */
function buildNflogTcpdumpArgv(options: TcpdumpArgvOptions): string[] {
  const group = options.nflogGroup;
  if (group === undefined || !Number.isInteger(group) || group < 0 || group > 65535) throw invalid(`NFLOG group ${String(group)} is out of range (0..65535)`);
  checkCaptureOptions(options);
  return [...options.argvPrefix, options.tcpdumpPath, "-i", `nflog:${group}`, "-n", ...pipeArgs(options)];
}

/** Both captures: every packet written to the pipe at once as pcap, SNAPLEN bytes of it, a KIB-sized buffer. */
function pipeArgs(options: TcpdumpArgvOptions): string[] {
  return ["-U", "-w", "-", "-s", String(options.snaplen), "-B", String(options.bufferKiB), "--immediate-mode"];
}

/** Every address of every interface (loopback included: a knock to 127.0.0.1 is addressed to this host too). */
export function addressesOfInterfaces(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const out: string[] = [];
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) out.push(info.address);
  }
  return normalizeLocalAddresses(out);
}

/** What both capture command lines take from the options: checked before anything is run. */
function checkCaptureOptions(options: TcpdumpArgvOptions): void {
  if (!Number.isInteger(options.snaplen) || options.snaplen < 64 || options.snaplen > 262_144) {
    throw invalid(`snaplen ${options.snaplen} is out of range (64..262144)`);
  }
  if (!Number.isInteger(options.bufferKiB) || options.bufferKiB < 1) throw invalid(`bufferKiB ${options.bufferKiB} must be a positive integer`);
  if (options.tcpdumpPath === "") throw invalid("tcpdump path is empty");
}
