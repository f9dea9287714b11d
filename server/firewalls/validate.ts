/**
 * Checks shared by every firewall adapter, so they all accept and refuse the same input. A firewall turns these
 * values into command text, so nothing reaches an adapter without passing here first.
 */
import { ExitCode, TknockError } from "../../src/errors.js";
import { isPort } from "../../src/port-number.js";
import {
  ACTIVE_SECONDS_DEFAULT,
  ACTIVE_SET_SIZE_DEFAULT,
  type GateSpec,
  type Grant,
  type NflogKnocks,
  type ServicePort,
  type WatchPorts,
} from "../../src/ports.js";
import { isValidClientName } from "../../src/protocol/profile-uri.js";
import { canonicalAddress as canonicalAddressText, type AddressFamily } from "../packets/address.js";

/** Same bound as the config's openSeconds. */
export const MAX_OPEN_SECONDS = 86_400;

/** A grant that passed validation: canonical address, family known. */
export type ValidGrant = {
  readonly family: AddressFamily;
  readonly src: string;
  readonly port: number;
  readonly openSeconds: number;
  readonly client?: string;
};

export type ValidGate = {
  /** Sorted, without duplicates. */
  readonly protectedPorts: readonly number[];
  readonly knockRange: { readonly min: number; readonly max: number } | undefined;
  /** Sorted (tcp first, then by port), without duplicates. */
  readonly exemptServices: readonly ServicePort[];
  readonly logKnocks: { readonly min: number; readonly max: number } | undefined;
  readonly nflogKnocks: NflogKnocks | undefined;
  readonly gateForward: boolean;
};

export function invalidGrant(message: string): TknockError {
  return new TknockError("TKNOCK_INVALID_GRANT", message, ExitCode.usage);
}

export function invalidGate(message: string): TknockError {
  return new TknockError("TKNOCK_INVALID_GATE", message, ExitCode.usage);
}

/** A bounded, quoted rendering of a bad value, safe to put in a one-line message. */
export function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/**
 * The canonical text of an IP address (lowercase, zeros compressed as inet_ntop does, so it equals what nft
 * lists), or undefined. Zone ids ("fe80::1%eth0") are refused: only hex digits, dots and colons.
 */
export function canonicalAddress(value: unknown): { family: AddressFamily; address: string } | undefined {
  return typeof value === "string" ? canonicalAddressText(value) : undefined;
}

export function validateGrant(grant: Grant): ValidGrant {
  const canonical = canonicalAddress(grant.src);
  if (!canonical) throw invalidGrant(`grant source ${show(grant.src)} is not an IPv4 or IPv6 address`);
  if (!isPort(grant.port)) throw invalidGrant(`grant port ${show(grant.port)} is not allowed: use an integer from 1 to 65535`);
  const s = grant.openSeconds;
  if (typeof s !== "number" || !Number.isInteger(s) || s < 1 || s > MAX_OPEN_SECONDS) {
    throw invalidGrant(`grant openSeconds ${show(s)} is not allowed: use an integer from 1 to ${MAX_OPEN_SECONDS}`);
  }
  const client = grant.client;
  if (client !== undefined && (typeof client !== "string" || !isValidClientName(client))) {
    throw invalidGrant(`grant client ${show(client)} is not allowed: use letters, digits, . _ - (up to 63)`);
  }
  const valid = { family: canonical.family, src: canonical.address, port: grant.port, openSeconds: s };
  return client === undefined ? valid : { ...valid, client };
}

/**
 * Validates every grant before any is applied (a bad one rejects the whole call), and merges duplicates of the
 * same source and port, keeping the longest: one set literal may not name an element twice.
 */
export function validateGrants(grants: readonly Grant[]): ValidGrant[] {
  const byKey = new Map<string, ValidGrant>();
  for (const grant of grants) {
    const valid = validateGrant(grant);
    const key = `${valid.src}|${valid.port}`;
    const seen = byKey.get(key);
    if (!seen || seen.openSeconds < valid.openSeconds) byKey.set(key, valid);
  }
  return [...byKey.values()];
}

export function validateGate(gate: GateSpec): ValidGate {
  if (!Array.isArray(gate.protectedPorts)) throw invalidGate("protectedPorts must be a list of ports");
  for (const port of gate.protectedPorts) {
    if (!isPort(port)) throw invalidGate(`protected port ${show(port)} is not allowed: use an integer from 1 to 65535`);
  }
  const protectedPorts = [...new Set(gate.protectedPorts)].sort((a, b) => a - b);
  return {
    protectedPorts,
    knockRange: validRange(gate.knockRange, "knock range"),
    exemptServices: validateServices(gate.exemptServices ?? []),
    logKnocks: validRange(gate.logKnocks, "logged range"),
    nflogKnocks: validNflog(gate.nflogKnocks),
    gateForward: gate.gateForward === true,
  };
}

function validNflog(n: NflogKnocks | undefined): ValidGate["nflogKnocks"] {
  if (n === undefined) return undefined;
  if (!Number.isInteger(n.group) || n.group < 0 || n.group > 65535) {
    throw invalidGate(`NFLOG group ${show(n.group)} is not allowed: use an integer from 0 to 65535`);
  }
  const range = validRange(n, "NFLOG-logged range")!;
  if (n.watchOnly !== true) return { group: n.group, ...range };
  const activeSeconds = n.activeSeconds ?? ACTIVE_SECONDS_DEFAULT;
  if (!Number.isInteger(activeSeconds) || activeSeconds < 1 || activeSeconds > 3600) {
    throw invalidGate(`prefilter active time ${show(n.activeSeconds)} s is not allowed: use an integer from 1 to 3600`);
  }
  const activeSetSize = n.activeSetSize ?? ACTIVE_SET_SIZE_DEFAULT;
  if (!Number.isInteger(activeSetSize) || activeSetSize < 1 || activeSetSize > 1_048_576) {
    throw invalidGate(`prefilter active set size ${show(n.activeSetSize)} is not allowed: use an integer from 1 to 1048576`);
  }
  return { group: n.group, ...range, watchOnly: true, activeSeconds, activeSetSize };
}

function validRange(range: { readonly min: number; readonly max: number } | undefined, what: string): { min: number; max: number } | undefined {
  if (range === undefined) return undefined;
  if (!isPort(range.min) || !isPort(range.max) || range.min > range.max) {
    throw invalidGate(`${what} ${show(range.min)}-${show(range.max)} is not allowed: use ports 1..65535 with min <= max`);
  }
  return { min: range.min, max: range.max };
}

function validateServices(services: readonly ServicePort[]): ServicePort[] {
  if (!Array.isArray(services)) throw invalidGate("exemptServices must be a list of {proto, port}");
  const byKey = new Map<string, ServicePort>();
  for (const s of services as readonly unknown[]) {
    const { proto, port } = (typeof s === "object" && s !== null ? s : {}) as { proto?: unknown; port?: unknown };
    if (proto !== "tcp" && proto !== "udp") throw invalidGate(`exempt service protocol ${show(proto)} is not allowed: use "tcp" or "udp"`);
    if (!isPort(port)) throw invalidGate(`exempt service port ${show(port)} is not allowed: use an integer from 1 to 65535`);
    byKey.set(`${proto}/${port}`, { proto, port });
  }
  return [...byKey.values()].sort((a, b) => (a.proto === b.proto ? a.port - b.port : a.proto < b.proto ? -1 : 1));
}

/** nft identifiers we allow for our table: a plain word, so it can never change the meaning of a command. */
export function validateTableName(name: string): string {
  if (typeof name !== "string" || !/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(name)) {
    throw invalidGate(`table name ${show(name)} is not allowed: use a letter then letters, digits or _ (at most 32)`);
  }
  return name;
}

/** The knock range the gate drops or logs, for the local-socket exemption; undefined when it does neither. */
export function knockSpan(gate: Pick<GateSpec, "knockRange" | "logKnocks" | "nflogKnocks">): { min: number; max: number } | undefined {
  return gate.knockRange ?? gate.nflogKnocks ?? gate.logKnocks ?? undefined;
}

/**
 * The watched ports (Firewall.setWatch), each list sorted and unique, a first port never also in `others`, an
 * instant port always also in `starts` (it is a first port that cannot wait).
 */
export function validateWatch(watch: WatchPorts): { starts: number[]; instant: number[]; others: number[] } {
  if (typeof watch !== "object" || watch === null) throw invalidGate("watch must be { starts, instant, others }");
  const instant = validPortList(watch.instant ?? [], "instant");
  const starts = [...new Set([...validPortList(watch.starts, "first"), ...instant])].sort((a, b) => a - b);
  const isStart = new Set(starts);
  return { starts, instant, others: validPortList(watch.others, "watch").filter((p) => !isStart.has(p)) };
}

function validPortList(ports: readonly number[], what: string): number[] {
  if (!Array.isArray(ports)) throw invalidGate(`${what} ports must be a list of ports`);
  const valid: number[] = [];
  for (const port of ports as readonly unknown[]) {
    if (!isPort(port)) throw invalidGate(`${what} port ${show(port)} is not allowed: use an integer from 1 to 65535`);
    valid.push(port);
  }
  return [...new Set(valid)].sort((a, b) => a - b);
}
