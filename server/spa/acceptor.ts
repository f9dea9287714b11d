/**
 * The pure SPA acceptance core (docs/protocol.md "SPA v1", acceptance): key id -> client and window in O(1) from a
 * table of every client's windows T-s..T+s, then authenticate and decrypt, then the timestamp, the replay cache,
 * the address and the ports. Time is a parameter; nothing here does I/O.
 */
import { isIP } from "node:net";
import type { KnockProfile } from "../../src/protocol/profile.js";
import { spaKey, spaKeyId } from "../../src/protocol/spa/keys.js";
import { looksLikeSpa, openSpaPacket, parseSpaHeader } from "../../src/protocol/spa/packet.js";
import { stepAt } from "../../src/protocol/window.js";
import type { SpaDecision } from "./decision.js";
import { NonceCache } from "./nonce-cache.js";

export type SpaClient = {
  readonly name: string;
  readonly profile: Pick<KnockProfile, "secret" | "periodSeconds">;
  /** The ports this client may open (its `open`). */
  readonly open: readonly number[];
  readonly allowNat: boolean;
};

export type SpaAcceptorOptions = {
  readonly skewWindows: number;
  /** Replay cache bound (default 65536). */
  readonly maxNonces?: number;
  /** Nonces accepted before a restart (the state file's). */
  readonly nonces?: ReadonlyMap<string, number>;
  /**
   * The state file was lost: a packet of a window that may have been accepted before this instant (step <=
   * T(atMs) + s) is refused as a replay, since its nonce may be one the lost file held.
   */
  readonly failClosedAtMs?: number;
};

type WindowKey = { readonly client: SpaClient; readonly step: number; readonly key: Buffer };

export class SpaAcceptor {
  private clients: readonly SpaClient[] = [];
  private readonly byKeyId = new Map<string, WindowKey>();
  /** The T each client's table entries were built for. */
  private builtFor = new Map<string, number>();
  /** The first instant at which some client's window changes: until then tick() has nothing to do. */
  private nextChangeMs = Number.NEGATIVE_INFINITY;
  private lastTickMs = Number.NEGATIVE_INFINITY;
  private readonly nonces: NonceCache;
  private readonly counters = { unknown: 0, opened: 0, refused: 0 };

  constructor(
    clients: readonly SpaClient[],
    private readonly options: SpaAcceptorOptions,
    nowMs: number,
  ) {
    this.nonces = new NonceCache(options.maxNonces ?? 65_536, options.nonces);
    this.setClients(clients, nowMs);
  }

  /** Replaces the clients (enroll, revoke); the replay cache is kept. */
  setClients(clients: readonly SpaClient[], nowMs: number): void {
    this.clients = clients;
    this.byKeyId.clear();
    this.builtFor = new Map();
    this.nextChangeMs = Number.NEGATIVE_INFINITY;
    this.lastTickMs = Number.NEGATIVE_INFINITY;
    this.tick(nowMs);
  }

  /** Moves each client's windows to the clock; one comparison when no window changed (per packet and every second). */
  tick(nowMs: number): void {
    // Windows only move forward (as the matcher's): a packet stamped a little earlier uses the current table.
    if (nowMs < this.nextChangeMs || nowMs <= this.lastTickMs) return;
    this.lastTickMs = nowMs;
    let next = Number.POSITIVE_INFINITY;
    const s = this.options.skewWindows;
    for (const c of this.clients) {
      const t = stepAt(nowMs, c.profile.periodSeconds);
      next = Math.min(next, (t + 1) * c.profile.periodSeconds * 1000);
      const before = this.builtFor.get(c.name);
      if (before === t) continue;
      if (before !== undefined) {
        for (let x = before - s; x <= before + s; x++) if (x < t - s || x > t + s) this.byKeyId.delete(this.keyIdOf(c, x));
      }
      for (let x = Math.max(0, t - s); x <= t + s; x++) {
        if (before !== undefined && x >= before - s && x <= before + s) continue;
        this.byKeyId.set(this.keyIdOf(c, x), { client: c, step: x, key: spaKey(c.profile.secret, x) });
      }
      this.builtFor.set(c.name, t);
    }
    this.nextChangeMs = next;
  }

  private keyIdOf(c: SpaClient, step: number): string {
    return step < 0 ? "" : spaKeyId(c.profile.secret, step).toString("hex");
  }

  /** One UDP datagram's payload from `src`, received at nowMs. Never throws for any bytes. */
  onDatagram(payload: Uint8Array, src: string, nowMs: number): SpaDecision {
    if (!looksLikeSpa(payload)) return { kind: "not-spa" };
    const h = parseSpaHeader(payload);
    this.tick(nowMs);
    // SPA-shaped (length and version) is SPA's: an impossible time is no plain knock either.
    const w = h.ok ? this.byKeyId.get(h.keyId) : undefined;
    if (!h.ok || w === undefined) {
      this.counters.unknown++;
      return { kind: "unknown" };
    }
    const { client, step } = w;
    const refuse = (reason: Extract<SpaDecision, { kind: "refuse" }>["reason"], extra: { address?: string; ports?: readonly number[] } = {}): SpaDecision => {
      this.counters.refused++;
      return { kind: "refuse", reason, client: client.name, step, src, ...extra };
    };
    const p = openSpaPacket(payload, w.key);
    if (!p.ok) return refuse(p.reason === "payload" ? "malformed" : "bad-tag");
    const asked = { ...(p.address !== undefined ? { address: p.address } : {}), ports: p.ports };
    // The time the client sealed must lie in the window its key id names: then it is within the skew too.
    if (stepAt(h.timestampMs, client.profile.periodSeconds) !== step) return refuse("skew", asked);
    const s = this.options.skewWindows;
    if (this.nonces.has(h.nonce, nowMs)) return refuse("replay", asked);
    if (this.options.failClosedAtMs !== undefined && step <= stepAt(this.options.failClosedAtMs, client.profile.periodSeconds) + s) {
      return refuse("replay", asked);
    }
    let address: string;
    if (p.nat) {
      if (!client.allowNat) return refuse("nat", asked);
      address = src;
    } else {
      address = p.address!;
      if (!isHostAddress(address)) return refuse("address", asked);
    }
    const ports = p.ports.length === 0 ? client.open : p.ports;
    if (!ports.every((x) => client.open.includes(x))) return refuse("ports", asked);
    // Candidacy ends when the server's T passes step + s: no copy of this packet can be accepted after that.
    const untilMs = (step + s + 1) * client.profile.periodSeconds * 1000;
    if (!this.nonces.add(h.nonce, untilMs, nowMs)) return refuse("full", asked);
    this.counters.opened++;
    return { kind: "open", client: client.name, step, src, address, ports: [...ports] };
  }

  /** The replay cache to persist (after an open), expired entries pruned. */
  nonceSnapshot(nowMs: number): ReadonlyMap<string, number> {
    this.nonces.prune(nowMs);
    return this.nonces.snapshot();
  }

  stats(): { unknown: number; opened: number; refused: number; nonces: number; windows: number } {
    return { ...this.counters, nonces: this.nonces.size, windows: this.byKeyId.size };
  }
}

/** An address a grant can sensibly name: not unspecified, multicast or the IPv4 broadcast. */
function isHostAddress(a: string): boolean {
  const family = isIP(a);
  if (family === 4) {
    const first = Number(a.split(".")[0]);
    return a !== "0.0.0.0" && a !== "255.255.255.255" && !(first >= 224 && first <= 239);
  }
  if (family === 6) return a !== "::" && !a.toLowerCase().startsWith("ff");
  return false;
}
