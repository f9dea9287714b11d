import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseJournalJson, parseKmsgRecord, parseNetfilterLine, syslogLineTimeMs } from "../../server/listeners/log/log-line.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/log");
const read = (name: string): string[] =>
  readFileSync(join(FIXTURES, name), "utf8")
    .split("\n")
    .filter((l) => l !== "");
const lines = read("lines.txt");
const kmsg = read("kmsg.txt");
const journal = read("journal.jsonl");
const line = (prefix: string, dpt: number): string => {
  const l = lines.find((x) => x.startsWith(prefix) && x.includes(` DPT=${dpt} `));
  if (l === undefined) throw new Error(`fixture line ${prefix} DPT=${dpt} missing`);
  return l;
};

describe("netfilter log lines (real kernel lines, test/fixtures/log)", () => {
  it("when nftables logs an IPv4 TCP SYN then the knock is its source, port and tcp", () => {
    expect(parseNetfilterLine(line("tknock: ", 40001))).toEqual({ src: "198.18.0.2", dstPort: 40001, proto: "tcp" });
  });

  it("when nftables logs an IPv6 TCP SYN then the fully written source is given in canonical form", () => {
    expect(parseNetfilterLine(line("tknock: ", 40002))).toEqual({ src: "fd18:18::2", dstPort: 40002, proto: "tcp" });
  });

  it("when nftables logs UDP datagrams over IPv4 and IPv6 then both are udp knocks (the UDP LEN= is not the IP LEN=)", () => {
    expect(parseNetfilterLine(line("tknock: ", 40003))).toEqual({ src: "198.18.0.2", dstPort: 40003, proto: "udp" });
    expect(parseNetfilterLine(line("tknock: ", 40004))).toEqual({ src: "fd18:18::2", dstPort: 40004, proto: "udp" });
  });

  it("when iptables LOG writes a SYN then it parses the same", () => {
    expect(parseNetfilterLine(line("ipt: ", 42007))).toEqual({ src: "198.18.0.2", dstPort: 42007, proto: "tcp" });
  });

  it("when ufw's [UFW BLOCK] prefix starts the line then TCP and UDP knocks are read", () => {
    expect(parseNetfilterLine(line("[UFW BLOCK] ", 41005))).toEqual({ src: "198.18.0.2", dstPort: 41005, proto: "tcp" });
    expect(parseNetfilterLine(line("[UFW BLOCK] ", 41006))).toEqual({ src: "198.18.0.2", dstPort: 41006, proto: "udp" });
    const audit = line("[UFW BLOCK] ", 41005).replace("[UFW BLOCK] ", "[UFW AUDIT] ");
    expect(parseNetfilterLine(audit)).toEqual({ src: "198.18.0.2", dstPort: 41005, proto: "tcp" });
  });

  it("when the TCP flags are SYN with ACK, FIN or RST, or no SYN at all, then it is no knock", () => {
    const syn = line("tknock: ", 40001);
    for (const flags of ["ACK SYN", "SYN FIN", "RST SYN", "ACK", "ACK PSH"]) {
      expect(parseNetfilterLine(syn.replace(" SYN ", ` ${flags} `)), flags).toBeUndefined();
    }
  });

  it("when a line is not a netfilter log line, is ICMP, a fragment without ports, outgoing, or garbage then it is skipped, not thrown", () => {
    const syn = line("tknock: ", 40001);
    for (const bad of [
      "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
      syn.replace("PROTO=TCP", "PROTO=ICMP"),
      syn.replace(/ SPT=\d+ DPT=\d+/, ""),
      syn.replace("IN=eth0 OUT=", "IN= OUT=eth0"),
      syn.replace("DPT=40001", "DPT=70000"),
      syn.replace("DPT=40001", "DPT=0"),
      syn.replace("SRC=198.18.0.2", "SRC=not-an-address"),
      `${syn}${"x".repeat(5000)}`,
      "",
      "IN=",
    ]) {
      expect(parseNetfilterLine(bad)).toBeUndefined();
    }
  });
});

describe("source envelopes", () => {
  it("when a /dev/kmsg record is read then its sequence, microseconds since boot and text come apart", () => {
    const r = parseKmsgRecord(kmsg[0] as string);
    expect(r?.usecSinceBoot).toBe(Number((kmsg[0] as string).split(",")[2]));
    expect(r && parseNetfilterLine(r.text)).toEqual({ src: "198.18.0.2", dstPort: 40001, proto: "tcp" });
    expect(parseKmsgRecord("garbage")).toBeUndefined();
    expect(parseKmsgRecord("4,x,y,-;text")).toBeUndefined();
  });

  it("when journalctl -o json prints a kernel message then its text and __REALTIME_TIMESTAMP (ms) are taken, also from a byte-array MESSAGE", () => {
    const first = parseJournalJson(journal[0] as string);
    expect(first?.atMs).toBe(1796188464123);
    expect(first && parseNetfilterLine(first.text)).toEqual({ src: "198.18.0.2", dstPort: 40001, proto: "tcp" });
    const bytes = parseJournalJson(journal[3] as string);
    expect(bytes && parseNetfilterLine(bytes.text)).toEqual({ src: "fd18:18::2", dstPort: 40004, proto: "udp" });
    expect(parseJournalJson("{not json")).toBeUndefined();
    expect(parseJournalJson('{"MESSAGE": 5}')).toBeUndefined();
  });

  it("when a syslog line has a sub-second RFC 3339 time then that is the knock's time, else none", () => {
    const l = line("tknock: ", 40001);
    expect(syslogLineTimeMs(`2026-12-02T05:14:24.123456+00:00 lab kernel: ${l}`)).toBe(Date.parse("2026-12-02T05:14:24.123Z"));
    expect(syslogLineTimeMs(`2026-12-02T06:14:24.5+01:00 lab kernel: ${l}`)).toBe(Date.parse("2026-12-02T05:14:24.500Z"));
    expect(syslogLineTimeMs(`Dec  2 05:14:24 lab kernel: ${l}`)).toBeUndefined();
    expect(syslogLineTimeMs(`2026-12-02T05:14:24+00:00 lab kernel: ${l}`)).toBeUndefined();
  });
});
