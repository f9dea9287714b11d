/**
 * A knock from the page: the CLI's step rules (client/steps.ts) and derivation (src/protocol/derive-core.ts),
 * with the browser's TCP connect as the sender: `new WebSocket('wss://ADDR:PORT/')` sends a SYN (the knock),
 * and close() while it is still connecting closes that socket.
 *
 * Why not fetch('https://ADDR:PORT/', { signal }): measured in Chromium (test/e2e/web-client.test.ts), aborting
 * the fetch leaves its connection attempt running in the socket pool. Chromium also opens a second, "backup"
 * connection 250 ms into each attempt, and the kernel retransmits each SYN after 1 s, 3 s, ...: the whole
 * sequence reached the server again and again, each copy refused and recorded as a replay from the client's own
 * address. A WebSocket attempt has no backup connection and is torn down by close(): one SYN per knock.
 */
import { chooseStep } from "../client/steps.js";
import { isBadPort } from "../src/protocol/bad-ports.js";
import { deriveSequenceAsync } from "../src/protocol/derive-core.js";
import { parseProfileUri } from "../src/protocol/profile-uri.js";
import { stepAt } from "../src/protocol/window.js";
import { webHmacSha256 } from "./crypto.js";
import type { WebStore } from "./store.js";

/** Between two knocks: each connect goes through the browser's network process, which keeps their order at this gap. */
export const KNOCK_DELAY_MS = 100;
/**
 * Each knock's connection is closed after this: its SYN left within milliseconds (more for a host name to
 * resolve), and closing before the kernel's first retransmission (1 s) keeps every knock to one packet.
 */
export const KNOCK_CLOSE_MS = 700;

export type KnockOutcome =
  | {
      readonly kind: "sent";
      readonly step: number;
      readonly reason: "current" | "next" | "clock-behind";
      readonly ports: readonly number[];
      readonly addr: string;
    }
  | { readonly kind: "wait"; readonly untilMs: number; readonly step: number }
  | { readonly kind: "bad-port"; readonly step: number; readonly port: number };

export type NetDeps = {
  readonly nowMs: () => number;
  readonly fetch: typeof fetch;
  readonly sleep: (ms: number) => Promise<void>;
};

export const browserDeps: NetDeps = {
  nowMs: () => Date.now(),
  fetch: (input, init) => fetch(input, init),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** https://ADDR:PORT/ with an IPv6 address in brackets. */
export function knockUrl(addr: string, port: number): string {
  const host = addr.includes(":") && !addr.startsWith("[") ? `[${addr}]` : addr;
  return `https://${host}:${port}/`;
}

/**
 * Chooses the step under the store's lock and records it before anything is sent (a crash or a closed tab
 * after this never reuses the step), then knocks. A sequence holding a port browsers refuse is not sent and
 * spends no step.
 */
export async function knockProfile(store: WebStore, name: string, deps: NetDeps = browserDeps): Promise<KnockOutcome> {
  const outcome = await store.update(async (profiles) => {
    const entry = profiles.find((p) => p.name === name);
    if (entry === undefined) throw new Error(`no profile named ${name}`);
    const profile = parseProfileUri(entry.uri);
    const nowMs = deps.nowMs();
    const choice = chooseStep(nowMs, profile.periodSeconds, entry.lastStepUsed);
    if (choice.kind === "wait") {
      return { profiles, result: { kind: "wait", untilMs: choice.untilMs, step: stepAt(nowMs, profile.periodSeconds) } as KnockOutcome };
    }
    const ports = await deriveSequenceAsync(webHmacSha256, profile, choice.step);
    const bad = ports.find(isBadPort);
    if (bad !== undefined) return { profiles, result: { kind: "bad-port", step: choice.step, port: bad } as KnockOutcome };
    const next = profiles.map((p) => (p === entry ? { ...p, lastStepUsed: choice.step } : p));
    return { profiles: next, result: { kind: "sent", step: choice.step, reason: choice.reason, ports, addr: entry.addr } as KnockOutcome };
  });
  if (outcome.kind === "sent") await sendKnocks(outcome.addr, outcome.ports, deps);
  return outcome;
}

export async function sendKnocks(addr: string, ports: readonly number[], deps: NetDeps): Promise<void> {
  for (const [i, port] of ports.entries()) {
    if (i > 0) await deps.sleep(KNOCK_DELAY_MS);
    const ws = new WebSocket(knockUrl(addr, port).replace(/^https:/, "wss:"));
    // The attempt is expected to fail (closed by us, or the port never answers): only its SYN matters.
    ws.onerror = () => undefined;
    setTimeout(() => ws.close(), KNOCK_CLOSE_MS);
  }
}

export type ProbeOutcome =
  /** An HTTPS server answered: the port is open for this address. */
  | { readonly kind: "open"; readonly afterMs: number }
  /** The attempt failed at once: a service that is not HTTPS (ssh), a refusal, or a network error. */
  | { readonly kind: "answered"; readonly afterMs: number }
  | { readonly kind: "no-answer"; readonly seconds: number }
  | { readonly kind: "cannot-tell"; readonly why: string };

/** How long one probe fetch may wait: the gate drops until it opens, so silence means closed. */
const PROBE_ATTEMPT_MS = 1200;

/**
 * Looks at the protected port with fetch('https://ADDR:PORT/') until something answers. The gate drops until
 * the knock opens it, so an answer means it let this address in: a response (an HTTPS service) says so for
 * sure; a quick failure is most likely the same (an ssh server's banner fails the TLS handshake at once), but a
 * page cannot tell it from a refusal or a network error, and says so. A bad port cannot be probed at all.
 */
export async function probeOpen(addr: string, port: number, waitSeconds: number, deps: NetDeps = browserDeps): Promise<ProbeOutcome> {
  if (isBadPort(port))
    return { kind: "cannot-tell", why: `browsers refuse connections to port ${port} (a Fetch "bad port"), so the page cannot look; your ssh client will tell` };
  const startMs = deps.nowMs();
  while (deps.nowMs() - startMs < waitSeconds * 1000) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), PROBE_ATTEMPT_MS);
    const seen = await deps
      .fetch(knockUrl(addr, port), { mode: "no-cors", signal: abort.signal, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" })
      .then(
        () => "open" as const,
        () => (abort.signal.aborted ? undefined : ("answered" as const)),
      );
    clearTimeout(timer);
    if (seen !== undefined) return { kind: seen, afterMs: deps.nowMs() - startMs };
  }
  return { kind: "no-answer", seconds: waitSeconds };
}

/** The ssh command for a profile's first open port. */
export function sshCommand(addr: string, port: number): { command: string; url: string } {
  const host = addr.includes(":") && !addr.startsWith("[") ? `[${addr}]` : addr;
  return { command: port === 22 ? `ssh ${addr}` : `ssh -p ${port} ${addr}`, url: port === 22 ? `ssh://${host}` : `ssh://${host}:${port}` };
}
