/**
 * The daemon's SPA side, beside the matcher: a datagram whose payload has the shape of an SPA v1 packet goes to
 * the acceptor; an open persists the replay cache (in state.json) before any grant, as an accepted step does;
 * refusals are recorded in replays.jsonl and logged (rate-limited); unknown key ids are only counted.
 */
import type { Grant, ObservedKnock } from "../../src/ports.js";
import { LogLimiter } from "../log-limit.js";
import type { Logger } from "../logger.js";
import type { ReplayRecord } from "../replay-log.js";
import { SpaAcceptor, type SpaAcceptorOptions, type SpaClient } from "./acceptor.js";
import type { SpaDecision } from "./decision.js";

export type SpaHandlerDeps = {
  readonly log: Logger;
  /** Makes the replay cache durable; false when it could not (then nothing opens: the nonce stays spent). */
  readonly persistNonces: (nonces: ReadonlyMap<string, number>, client: string) => boolean;
  /** Opens the grants (the daemon's path: track, firewall, log). */
  readonly open: (grants: Grant[], fields: Record<string, unknown>, atMs: number) => void;
  readonly record: (r: ReplayRecord) => void;
  /** How long a grant of this client lasts (its own openSeconds, else the config's). */
  readonly openSeconds: (client: string) => number;
  /** Told every decision but "not-spa" (metrics, `status` activity). */
  readonly decided?: (d: SpaDecision, knock: ObservedKnock) => void;
};

const LOG_LINES_PER_SECOND = 20;

export class SpaHandler {
  private acceptor: SpaAcceptor;
  private readonly refusalLines = new LogLimiter(LOG_LINES_PER_SECOND);
  private readonly counters = { errors: 0, persistFailures: 0 };

  constructor(
    private readonly deps: SpaHandlerDeps,
    clients: readonly SpaClient[],
    private options: SpaAcceptorOptions,
    nowMs: number,
  ) {
    this.acceptor = new SpaAcceptor(clients, options, nowMs);
  }

  setClients(clients: readonly SpaClient[], nowMs: number): void {
    this.acceptor.setClients(clients, nowMs);
  }

  /** New acceptance settings (skew): a fresh acceptor that keeps the replay cache. */
  reconfigure(clients: readonly SpaClient[], skewWindows: number, nowMs: number): void {
    this.options = { ...this.options, skewWindows, nonces: this.acceptor.nonceSnapshot(nowMs) };
    this.acceptor = new SpaAcceptor(clients, this.options, nowMs);
  }

  tick(nowMs: number): void {
    this.acceptor.tick(nowMs);
  }

  /** True when the datagram was SPA's (acted on or counted); false: a plain knock for the matcher. */
  handle(knock: ObservedKnock): boolean {
    const payload = knock.payload;
    if (payload === undefined) return false;
    let d: SpaDecision;
    try {
      d = this.acceptor.onDatagram(payload, knock.src, knock.atMs);
    } catch (err) {
      // A bug must not kill the daemon; nothing opens on an error (fail closed).
      this.counters.errors++;
      this.deps.log.error({ err: String(err), src: knock.src }, "SPA error; packet dropped");
      return true;
    }
    if (d.kind !== "not-spa") this.deps.decided?.(d, knock);
    switch (d.kind) {
      case "not-spa":
        return false;
      case "unknown":
        return true;
      case "open": {
        if (!this.deps.persistNonces(this.acceptor.nonceSnapshot(knock.atMs), d.client)) {
          this.counters.persistFailures++;
          return true;
        }
        const openSeconds = this.deps.openSeconds(d.client);
        const grants = d.ports.map((port) => ({ src: d.address, port, openSeconds, client: d.client }));
        this.deps.open(grants, { client: d.client, src: d.src, address: d.address, step: d.step, ports: d.ports, via: "spa" }, knock.atMs);
        return true;
      }
      case "refuse": {
        this.deps.record({
          time: new Date(knock.atMs).toISOString(),
          source: d.src,
          kind: `spa-${d.reason}`,
          client: d.client,
          step: d.step,
          ...(d.ports !== undefined ? { ports: d.ports } : {}),
          ...(d.address !== undefined ? { address: d.address } : {}),
        });
        const admitted = this.refusalLines.admit(knock.atMs);
        if (admitted) {
          this.deps.log.warn(
            {
              reason: d.reason,
              client: d.client,
              src: d.src,
              step: d.step,
              address: d.address,
              via: "spa",
              ...(admitted.suppressedBefore > 0 ? { suppressedBefore: admitted.suppressedBefore } : {}),
            },
            "SPA packet refused",
          );
        }
        return true;
      }
    }
  }

  stats(): Record<string, number> {
    return { ...this.counters, ...this.acceptor.stats() };
  }
}
