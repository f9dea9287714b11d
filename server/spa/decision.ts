/** What the SPA acceptor makes of one datagram; the daemon acts on it (persist the nonce, then open; record refusals). */

/**
 * bad-tag: the key id of a current window but the packet does not authenticate (tampered, or forged by someone
 * who saw the key id); malformed: it authenticates but its payload breaks the layout; skew: its timestamp is not
 * in the window its key id names; replay: its nonce was accepted before (or it may have been, before a
 * fail-closed start); nat: it asks for the source address and the client may not; address: it names an address
 * that cannot be a host (unspecified, multicast, broadcast); ports: it asks for a port the client may not open;
 * full: the replay cache is full.
 */
export type SpaRefuseReason = "bad-tag" | "malformed" | "skew" | "replay" | "nat" | "address" | "ports" | "full";

export type SpaDecision =
  /** Not shaped like an SPA v1 packet (length, version): a plain knock, the matcher's business. */
  | { readonly kind: "not-spa" }
  /** Shaped like one, but its key id names no client's current window: counted, never logged per packet. */
  | { readonly kind: "unknown" }
  /** Accepted: the acceptor has already spent the nonce; persist its cache, then open `ports` for `address`. */
  | {
      readonly kind: "open";
      readonly client: string;
      readonly step: number;
      readonly src: string;
      readonly address: string;
      readonly ports: readonly number[];
    }
  | {
      readonly kind: "refuse";
      readonly reason: SpaRefuseReason;
      readonly client: string;
      readonly step: number;
      readonly src: string;
      /** The address asked for, when the payload was read. */
      readonly address?: string;
      readonly ports?: readonly number[];
    };
