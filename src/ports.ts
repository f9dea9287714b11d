/** The small types that adapters implement. The core depends on these, never on an adapter. */

export type Clock = { nowMs(): number };

export const systemClock: Clock = { nowMs: () => Date.now() };

export type KnockProto = "tcp" | "udp";

/** One packet that may be a knock: a TCP SYN without ACK, or a UDP datagram, addressed to this host. */
export type ObservedKnock = {
  readonly src: string;
  readonly dstPort: number;
  readonly proto: KnockProto;
  readonly atMs: number;
};

export type Listener = {
  readonly name: string;
  knocks(signal: AbortSignal): AsyncIterable<ObservedKnock>;
};

/** A source allowed to reach one protected port until the kernel expires the grant. */
export type Grant = {
  readonly src: string;
  readonly port: number;
  readonly proto: KnockProto;
  readonly openSeconds: number;
  /** Seconds left, when the firewall reports it (list()). */
  readonly expiresInSeconds?: number;
};

export type Firewall = {
  readonly name: string;
  /** Create the gate (idempotent). Protected ports are dropped unless granted. */
  install(protectedPorts: readonly number[]): Promise<void>;
  open(grants: readonly Grant[]): Promise<void>;
  list(): Promise<Grant[]>;
  /** Remove the gate deliberately (never on a normal exit: fail closed). */
  remove(): Promise<void>;
  close(): Promise<void>;
};
