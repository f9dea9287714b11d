import type { Socket } from "node:net";

/**
 * What one look at a protected port found. The gate drops until a knock opens it, so any answer means this
 * address gets through: "open" (a TCP connect succeeded, or a UDP payload got a reply), "reachable" (refused: a
 * TCP reset or an ICMP port unreachable came back, so the gate let the packet in but nothing listens on that
 * protocol), "closed" (no answer in time: the gate drops), or "error" (this host could not send).
 */
export type ProbeResult =
  | { readonly kind: "open"; readonly socket?: Socket }
  | { readonly kind: "reachable" }
  | { readonly kind: "closed" }
  | { readonly kind: "error"; readonly code: string };

/** How the port is checked: a TCP connect, or a UDP payload (`--probe-udp HEX`) and any reply. */
export type ProbeSpec = { readonly kind: "tcp" } | { readonly kind: "udp"; readonly payload: Buffer };

/** Parses `--probe-udp HEX`: the payload bytes, 1 to 512 of them. */
export function parseHexPayload(text: string): Buffer | undefined {
  const hex = text.replace(/^0x/i, "").replace(/[\s:]/g, "");
  if (hex.length === 0 || hex.length % 2 !== 0 || hex.length > 1024 || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
  return Buffer.from(hex, "hex");
}
