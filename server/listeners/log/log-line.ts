/**
 * Pure parsers for the log listener: a netfilter log line as the kernel writes it (iptables LOG, nftables `log`,
 * ufw's "[UFW BLOCK]" lines are iptables LOG with a prefix), and the envelopes around it (a /dev/kmsg record, a
 * `journalctl -o json` line, a syslog file line). Nothing here throws: a line that is not a knock is undefined and
 * the caller counts it.
 */
import { isIP, SocketAddress } from "node:net";
import type { KnockProto } from "../../../src/ports.js";

/** What a netfilter log line says about one packet that may be a knock (no time: the envelope gives it). */
export type LoggedKnock = { readonly src: string; readonly dstPort: number; readonly proto: KnockProto };

/** Longer lines are not netfilter log lines (the kernel caps a record at about 1 KiB); skipped unread. */
export const MAX_LINE_CHARS = 4096;

function field(line: string, name: string): string | undefined {
  // Fields are space-separated NAME=value; " NAME=" avoids matching the end of another name (LEN= in "TCPLEN=").
  const at = line.indexOf(` ${name}=`);
  if (at < 0) return undefined;
  const start = at + name.length + 2;
  const end = line.indexOf(" ", start);
  return line.slice(start, end < 0 ? line.length : end);
}

function hasFlag(line: string, flag: string): boolean {
  return line.includes(` ${flag} `) || line.endsWith(` ${flag}`);
}

/**
 * The knock in one netfilter log line, or undefined when the line is not one: not a log line, not TCP/UDP, a TCP
 * packet that is not a bare SYN (SYN with ACK, FIN or RST is no knock, as in the pcap path), a fragment without
 * ports, or a field out of range.
 */
export function parseNetfilterLine(line: string): LoggedKnock | undefined {
  if (line.length > MAX_LINE_CHARS) return undefined;
  const at = line.indexOf("IN=");
  if (at < 0) return undefined;
  const body = ` ${line.slice(at)}`;
  // An empty IN= is a packet this host sent (OUTPUT chain), never a knock to it.
  if (field(body, "IN") === "") return undefined;
  const proto = field(body, "PROTO");
  if (proto !== "TCP" && proto !== "UDP") return undefined;
  const srcText = field(body, "SRC");
  const dpt = field(body, "DPT");
  if (srcText === undefined || dpt === undefined || !/^\d{1,5}$/.test(dpt)) return undefined;
  const dstPort = Number(dpt);
  if (dstPort < 1 || dstPort > 65535) return undefined;
  const family = isIP(srcText);
  if (family === 0) return undefined;
  if (proto === "TCP") {
    // The flags the kernel prints after RES=: URG ACK PSH RST SYN FIN.
    if (!hasFlag(body, "SYN") || hasFlag(body, "ACK") || hasFlag(body, "FIN") || hasFlag(body, "RST")) return undefined;
  }
  // The kernel prints IPv6 sources fully expanded (fd18:0018:...:0002); the matcher keys the canonical text.
  const src = family === 4 ? srcText : new SocketAddress({ address: srcText, family: "ipv6" }).address;
  return { src, dstPort, proto: proto === "TCP" ? "tcp" : "udp" };
}

/** A /dev/kmsg record: "priority,sequence,microseconds since boot,flags[,...];text" (continuation lines after). */
export type KmsgRecord = { readonly seq: number; readonly usecSinceBoot: number; readonly text: string };

export function parseKmsgRecord(record: string): KmsgRecord | undefined {
  const semi = record.indexOf(";");
  if (semi < 0 || semi > 64) return undefined;
  const [, seq, usec] = record.slice(0, semi).split(",");
  if (seq === undefined || usec === undefined || !/^\d+$/.test(seq) || !/^\d+$/.test(usec)) return undefined;
  const nl = record.indexOf("\n", semi);
  return { seq: Number(seq), usecSinceBoot: Number(usec), text: record.slice(semi + 1, nl < 0 ? record.length : nl) };
}

/** One `journalctl -o json` line: the message and its wall-clock time (__REALTIME_TIMESTAMP, microseconds). */
export function parseJournalJson(line: string): { text: string; atMs: number | undefined } | undefined {
  if (line.length > MAX_LINE_CHARS * 4) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const { MESSAGE: message, __REALTIME_TIMESTAMP: realtime } = doc as Record<string, unknown>;
  // journald stores a message that is not valid UTF-8 as an array of bytes.
  const text =
    typeof message === "string"
      ? message
      : Array.isArray(message) && message.every((b) => typeof b === "number")
        ? Buffer.from(message).toString("latin1")
        : undefined;
  if (text === undefined) return undefined;
  const us = typeof realtime === "string" && /^\d{1,20}$/.test(realtime) ? Number(realtime) : undefined;
  return { text, atMs: us === undefined ? undefined : Math.floor(us / 1000) };
}

/**
 * A syslog file line's time when it has sub-second precision (RFC 3339 with a fraction, as rsyslog's
 * high-precision format writes: "2026-12-02T05:14:24.123456+00:00 host kernel: ..."); undefined otherwise (the
 * classic "Dec  2 05:14:24" has whole seconds and no year: the caller uses the time it read the line).
 */
export function syslogLineTimeMs(line: string): number | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9})(Z|[+-]\d\d:\d\d)\s/.exec(line);
  if (!m) return undefined;
  const [, stamp, zone] = m as unknown as [string, string, string];
  const dot = stamp.indexOf(".");
  const ms = Date.parse(`${stamp.slice(0, dot + 1)}${stamp.slice(dot + 1, dot + 4).padEnd(3, "0")}${zone}`);
  return Number.isNaN(ms) ? undefined : ms;
}
