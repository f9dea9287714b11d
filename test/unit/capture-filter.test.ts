import { execFileSync, spawnSync } from "node:child_process";
import type { NetworkInterfaceInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parsePcapBuffer } from "../../server/packets/pcap.js";
import type { ObservedKnock } from "../../src/ports.js";
import { addressesOfInterfaces, buildCaptureFilter, buildTcpdumpArgv, normalizeLocalAddresses } from "../../server/listeners/pcap/capture-filter.js";
import { codeOf } from "../support/error-code.js";

const BASE = {
  interface: "eth0",
  tcpdumpPath: "tcpdump",
  argvPrefix: [],
  snaplen: 128,
  bufferKiB: 16384,
  localAddresses: ["198.18.0.2", "fd18:18::2"],
  knockRange: { min: 40000, max: 49999 },
};

const EXPECTED_FILTER =
  "(dst host 198.18.0.2 or dst host fd18:18::2) and (" +
  "(ip and tcp dst portrange 40000-49999 and tcp[tcpflags] & (tcp-syn|tcp-ack|tcp-fin|tcp-rst) == tcp-syn)" +
  " or (ip6 and ip6[6] == 6 and tcp dst portrange 40000-49999 and ip6[53] & 0x17 == 0x02)" +
  " or udp dst portrange 40000-49999)";

describe("tcpdump command line", () => {
  it("when building the argv then it is exactly the documented command", () => {
    expect(buildTcpdumpArgv(BASE)).toEqual([
      "tcpdump",
      "-i",
      "eth0",
      "-Q",
      "in",
      "-n",
      "-p",
      "-U",
      "-w",
      "-",
      "-s",
      "128",
      "-B",
      "16384",
      "--immediate-mode",
      EXPECTED_FILTER,
    ]);
  });

  it("when a prefix and a tcpdump path are given then the command runs through them", () => {
    const argv = buildTcpdumpArgv({ ...BASE, interface: "any", tcpdumpPath: "/usr/sbin/tcpdump", argvPrefix: ["ip", "netns", "exec", "lab-srv"] });
    expect(argv.slice(0, 7)).toEqual(["ip", "netns", "exec", "lab-srv", "/usr/sbin/tcpdump", "-i", "any"]);
  });

  it("when the interface, snaplen or buffer is not sane then it is refused with TKNOCK_INVALID_CAPTURE", () => {
    for (const bad of [
      { interface: "-w" },
      { interface: "eth0 or 1" },
      { interface: "" },
      { interface: "averyveryverylongname" },
      { snaplen: 20 },
      { snaplen: 1.5 },
      { bufferKiB: 0 },
      { tcpdumpPath: "" },
    ]) {
      expect(codeOf(() => buildTcpdumpArgv({ ...BASE, ...bad }))).toBe("TKNOCK_INVALID_CAPTURE");
    }
  });
});

describe("tcpdump command line for an NFLOG group", () => {
  it("when an NFLOG group is given then tcpdump reads nflog:N with neither filter nor direction (libpcap refuses both there)", () => {
    expect(buildTcpdumpArgv({ ...BASE, localAddresses: [], snaplen: 256, nflogGroup: 7 })).toEqual([
      "tcpdump",
      "-i",
      "nflog:7",
      "-n",
      "-U",
      "-w",
      "-",
      "-s",
      "256",
      "-B",
      "16384",
      "--immediate-mode",
    ]);
  });

  it("when the NFLOG group, snaplen or buffer is not sane then it is refused with TKNOCK_INVALID_CAPTURE", () => {
    for (const bad of [{ nflogGroup: -1 }, { nflogGroup: 65536 }, { nflogGroup: 1.5 }, { nflogGroup: 5, snaplen: 20 }, { nflogGroup: 5, bufferKiB: 0 }]) {
      expect(codeOf(() => buildTcpdumpArgv({ ...BASE, ...bad }))).toBe("TKNOCK_INVALID_CAPTURE");
    }
  });
});

describe("capture filter", () => {
  it("when building the filter then it names each local address and the knock range", () => {
    expect(buildCaptureFilter(BASE)).toBe(EXPECTED_FILTER);
  });

  it("when addresses repeat, carry a zone or upper case then they are normalized", () => {
    expect(normalizeLocalAddresses(["FE80::1%eth0", "fe80::1", " 10.0.0.1 ", "10.0.0.1"])).toEqual(["fe80::1", "10.0.0.1"]);
    expect(buildCaptureFilter({ localAddresses: ["10.0.0.1"], knockRange: { min: 5, max: 5 } })).toBe(
      "(dst host 10.0.0.1) and (" +
        "(ip and tcp dst portrange 5-5 and tcp[tcpflags] & (tcp-syn|tcp-ack|tcp-fin|tcp-rst) == tcp-syn)" +
        " or (ip6 and ip6[6] == 6 and tcp dst portrange 5-5 and ip6[53] & 0x17 == 0x02)" +
        " or udp dst portrange 5-5)",
    );
  });

  it("when an address is not an IP, none is given or the range is not a range then it is refused", () => {
    for (const bad of [
      { localAddresses: ["198.18.0.2 or 1=1"] },
      { localAddresses: ["host.example"] },
      { localAddresses: [] },
      { knockRange: { min: 0, max: 10 } },
      { knockRange: { min: 20, max: 10 } },
      { knockRange: { min: 1, max: 65536 } },
    ]) {
      expect(codeOf(() => buildCaptureFilter({ ...BASE, ...bad }))).toBe("TKNOCK_INVALID_CAPTURE");
    }
  });

  it("when reading the host's addresses then every interface's addresses count, loopback included", () => {
    const info = (address: string, family: "IPv4" | "IPv6"): NetworkInterfaceInfo =>
      family === "IPv4"
        ? { address, family, netmask: "", mac: "", internal: false, cidr: null }
        : { address, family, netmask: "", mac: "", internal: false, cidr: null, scopeid: 0 };
    expect(
      addressesOfInterfaces({
        lo: [info("127.0.0.1", "IPv4"), info("::1", "IPv6")],
        eth0: [info("198.18.0.2", "IPv4"), info("fe80::2%eth0", "IPv6")],
        down: undefined,
      }),
    ).toEqual(["127.0.0.1", "::1", "198.18.0.2", "fe80::2"]);
  });
});

// libpcap is the judge of a BPF filter: compile it and run it over the real captures of the server's traffic.
const hasTcpdump = spawnSync("tcpdump", ["--version"]).status === 0;

function filteredKnocks(fixture: string, filter: string): { knocks: ObservedKnock[]; packets: number } {
  const path = fileURLToPath(new URL(`../fixtures/pcap/${fixture}`, import.meta.url));
  const out = execFileSync("tcpdump", ["-r", path, "-w", "-", filter], { stdio: ["ignore", "pipe", "ignore"] });
  const knocks: ObservedKnock[] = [];
  const result = parsePcapBuffer(out, (k) => knocks.push(k));
  return { knocks, packets: result.packets };
}

describe.skipIf(!hasTcpdump)("capture filter run by libpcap over real captures", () => {
  for (const fixture of ["en10mb.pcap", "linux-sll.pcap", "linux-sll2.pcap"]) {
    it(`when filtering ${fixture} then only the client's knocks to the server in range pass, nothing else`, () => {
      const filter = buildCaptureFilter({ localAddresses: ["198.18.0.2", "fd18:18::2"], knockRange: { min: 40000, max: 40010 } });
      const { knocks, packets } = filteredKnocks(fixture, filter);
      // Not the RSTs and ICMP errors going out, not the handshake's ACK and FIN to 40005, not the server's own SYN.
      expect(knocks.map(({ src, dstPort, proto }) => `${proto} ${src} ${dstPort}`)).toEqual([
        "tcp 198.18.0.1 40001",
        "udp 198.18.0.1 40002",
        "tcp fd18:18::1 40003",
        "udp fd18:18::1 40004",
        "tcp 198.18.0.1 40005",
      ]);
      expect(packets).toBe(knocks.length);
    });

    it(`when filtering ${fixture} with a narrower range or one address then only those knocks pass`, () => {
      const narrow = buildCaptureFilter({ localAddresses: ["198.18.0.2", "fd18:18::2"], knockRange: { min: 40002, max: 40004 } });
      expect(filteredKnocks(fixture, narrow).knocks.map((k) => k.dstPort)).toEqual([40002, 40003, 40004]);
      const v4only = buildCaptureFilter({ localAddresses: ["198.18.0.2"], knockRange: { min: 40000, max: 40010 } });
      expect(filteredKnocks(fixture, v4only).knocks.map((k) => k.dstPort)).toEqual([40001, 40002, 40005]);
      const elsewhere = buildCaptureFilter({ localAddresses: ["198.18.0.9"], knockRange: { min: 40000, max: 40010 } });
      expect(filteredKnocks(fixture, elsewhere).packets).toBe(0);
    });
  }
});
