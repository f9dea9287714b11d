import type { KnockProto } from "../../src/ports.js";

/** How knocks leave this host: tcp (connect and abort), udp (one datagram) or raw (a crafted SYN). */
export type Transport = "tcp" | "udp" | "raw";
export const TRANSPORTS: readonly Transport[] = ["tcp", "udp", "raw"];

/** A resolved knock target. */
export type KnockTarget = { readonly address: string; readonly family: 4 | 6 };

/** Sends knocks to one target; each knock() puts exactly one packet on the wire. */
export type Sender = {
  readonly transport: Transport;
  knock(port: number): Promise<void>;
  /**
   * Sends the whole sequence in one event-loop turn, in order (for `--delay 0`): the knocks leave within
   * microseconds of each other, however busy this host is, so almost no spoofed knock can land between them
   * (docs/protocol.md section 6). Transports without it knock one by one.
   */
  knockAll?(ports: readonly number[]): Promise<void>;
  close(): void;
};

/** The protocol a transport's packets carry, as the server matches them. */
export function transportProto(t: Transport): KnockProto {
  return t === "udp" ? "udp" : "tcp";
}

export function defaultTransport(proto: KnockProto): Transport {
  return proto === "udp" ? "udp" : "tcp";
}
