/** The small types that adapters implement. The core depends on these, never on an adapter. */

export type Clock = { nowMs(): number };

export const systemClock: Clock = { nowMs: () => Date.now() };

export type KnockProto = "tcp" | "udp";

/** One packet that may be a knock: a TCP SYN without ACK, or a UDP datagram, addressed to this host. */
export type ObservedKnock = {
  /**
   * The source address as inet_ntop(3) prints it (dotted quad; RFC 5952 IPv6), as listeners give it. Any other
   * text is still a source, one of its own.
   */
  readonly src: string;
  readonly dstPort: number;
  readonly proto: KnockProto;
  readonly atMs: number;
  /** UDP, when the listener can tell: the datagram's payload if it may be an SPA packet (docs/protocol.md "SPA v1"). */
  readonly payload?: Uint8Array | undefined;
};

/** Counters every listener keeps; bad input is counted and dropped, never thrown. */
export type ListenerStats = {
  /** Records/lines read from the source. */
  packets: number;
  /** Knock candidates handed to the callback. */
  knocks: number;
  /** Truncated, garbage or unsupported records, skipped. */
  malformed: number;
  /** Times the capture process was (re)started. */
  starts: number;
  /** Packets the kernel dropped before the capture saw them, when the source reports it. */
  kernelDrops: number;
  /** Packets the interface (driver) dropped, when the capture reports it (tcpdump's "dropped by interface"). */
  interfaceDrops?: number;
};

/** Whether a listener is receiving packets, for the daemon's health report and `status`. */
export type ListenerHealth = {
  /** Packets are being captured now (tcpdump said "listening on"). */
  readonly capturing: boolean;
  /** When `capturing` last changed, or when the listener started (ms since the epoch). */
  readonly sinceMs: number;
  /** Capture starts in a row that did not run stably; back to 0 once capture has run for a few seconds. */
  readonly failedStarts: number;
  /** The last reason capture stopped or could not start, one line. */
  readonly lastProblem?: string;
};

/**
 * A source of knock packets. The callback is synchronous and called once per packet: at flood rates a promise
 * per packet (AsyncIterable) costs more than the matching itself (see docs/design.md).
 */
export type Listener = {
  readonly name: string;
  /** Runs until the signal aborts; restarts its source with backoff if it dies. Resolves when stopped. */
  run(onKnock: (knock: ObservedKnock) => void, signal: AbortSignal): Promise<void>;
  stats(): ListenerStats;
  /** Capture health, when the listener can tell (a listener without it is reported as "unknown"). */
  health?(): ListenerHealth;
};

/** A source allowed to reach one protected port until the kernel expires the grant. */
export type Grant = {
  readonly src: string;
  readonly port: number;
  readonly openSeconds: number;
  /** The client whose knock opened it, when known (the command backend's {client}). */
  readonly client?: string;
  /** Seconds left, when the firewall reports it (list()). */
  readonly expiresInSeconds?: number;
};

/** A port on which a local service takes packets from other hosts. */
export type ServicePort = { readonly proto: KnockProto; readonly port: number };

/** What the gate protects: these ports dropped unless granted, and the knock range dropped (invisible to scans). */
export type GateSpec = {
  readonly protectedPorts: readonly number[];
  /** Dropped for everyone; undefined: not dropped (config knockRangeDrop false), a scan then sees it closed. */
  readonly knockRange: { readonly min: number; readonly max: number } | undefined;
  /**
   * Local services inside the knock range: never dropped by the knock-range rule, per protocol (the protected
   * ports stay gated: they are matched first). Absent: none.
   */
  readonly exemptServices?: readonly ServicePort[];
  /**
   * Ports whose packets the kernel logs (rate-limited, prefix "tknock: ") before the knock-range drop, for the log
   * listener. Absent: no log rule.
   */
  readonly logKnocks?: { readonly min: number; readonly max: number } | undefined;
  /**
   * Ports whose packets the kernel logs to NFLOG group `group` (not rate-limited: a full netlink queue drops, and
   * the listener counts it) before the knock-range drop, for the nflog listener. Absent: no NFLOG rule.
   */
  readonly nflogKnocks?: NflogKnocks | undefined;
  /**
   * Also gate forwarded traffic (a port published by Docker or any DNAT) whose original destination port, before
   * the DNAT, is protected. Absent or false: only traffic to this host is gated.
   */
  readonly gateForward?: boolean;
};

export type NflogKnocks = {
  readonly group: number;
  readonly min: number;
  readonly max: number;
  /**
   * The kernel prefilter: log only packets to the gate's watched ports (Firewall.setWatch); the knock-range drop
   * still applies to every port. Absent or false: log the whole range.
   */
  readonly watchOnly?: boolean;
  /**
   * With watchOnly: a source that sent to a sequence's first port becomes "active" for this many seconds, renewed
   * by each of its watched packets, and only an active source's packets to the other watched ports (later
   * sequence ports, tripwires) are logged: a source that started no sequence has no progress they could continue
   * or reset. Default ACTIVE_SECONDS_DEFAULT.
   */
  readonly activeSeconds?: number;
  /** With watchOnly: entries per active set (IPv4, IPv6). Default ACTIVE_SET_SIZE_DEFAULT. */
  readonly activeSetSize?: number;
};

/**
 * A flood must bring this many new sources to first ports within the active time to fill an active set; a full
 * set fails closed (every watched port logged for every source). Each entry costs the kernel about 100 bytes.
 */
export const ACTIVE_SET_SIZE_DEFAULT = 65536;

export const ACTIVE_SECONDS_DEFAULT = 6;

/** The prefilter's ports, for the sequences the matcher can accept now. */
export type WatchPorts = {
  /**
   * The first port of each sequence, and each SPA port: logged from any source. A port that is only a first port
   * is never a last knock, so the kernel may batch its messages (they reach user space with the next packet logged
   * at once, when its buffer fills, or within a second) and the daemon wakes once per batch under a flood.
   */
  readonly starts: readonly number[];
  /**
   * The ports among `starts` whose packet must reach user space at once: SPA ports (one datagram is the whole
   * knock) and first ports that are also a later port of a watched sequence (a possible last knock). Absent: none.
   */
  readonly instant?: readonly number[];
  /** The sequences' later ports and the tripwires re-drawn each window: logged from active sources. */
  readonly others: readonly number[];
};

/** What check() found wrong with the gate; message is one short line for logs and `status`. */
export type GateProblem = {
  readonly kind: "table-missing" | "chain-missing" | "set-missing" | "rules-differ" | "elements-differ" | "unexpected-object";
  readonly message: string;
};

export type Firewall = {
  readonly name: string;
  /**
   * Create or update the gate (idempotent). `replace` first drops everything in the firewall's own table (grants
   * included) in the same transaction, for a table someone else added to: no packet sees the table absent.
   */
  install(gate: GateSpec, options?: { readonly replace?: boolean }): Promise<void>;
  /** Add grants; re-granting a present grant restarts its timeout. */
  open(grants: readonly Grant[]): Promise<void>;
  /** Current grants, read from the firewall itself. */
  list(): Promise<Grant[]>;
  /**
   * Whether the gate in the firewall is the one install(gate) puts there: undefined when intact, else what is
   * wrong (the table flushed or deleted by a firewall reload, a chain, set or rule missing or changed). Grants are
   * not part of the comparison (they come and go). Cheap enough to run every second.
   */
  check(gate: GateSpec): Promise<GateProblem | undefined>;
  /**
   * Optional: calls onChange soon after something may have changed the gate from outside (e.g. `nft monitor`),
   * until the signal aborts. An accelerator only: the caller still checks periodically.
   */
  watch?(onChange: (what: string) => void, signal: AbortSignal): void;
  /**
   * Optional, with watch(): proves that the change watcher is alive and has reported everything up to now, by
   * making a change that changes nothing and waiting for the watcher to report it. True only when it did, and
   * not for the first report after the watcher (re)started, which may have missed changes before it listened: the
   * caller then checks the gate in full. Never rejects.
   */
  heartbeat?(): Promise<boolean>;
  /**
   * Optional (needed for nflogKnocks.watchOnly): replace the watched ports in one transaction. Kept by the
   * firewall and put back by every install (a repair included); not part of check()'s comparison (they change
   * every window).
   */
  setWatch?(watch: WatchPorts): Promise<void>;
  /** Remove the gate deliberately (never on a normal exit: fail closed). */
  remove(): Promise<void>;
  /** Release resources (child processes); the gate stays. */
  close(): Promise<void>;
};
