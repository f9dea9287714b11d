/**
 * `tknock HOST` for an SPA profile (docs/protocol.md "SPA v1"): one encrypted UDP datagram to this window's SPA
 * port, naming the ports and the address to open. No step bookkeeping: the server refuses a packet's copy by its
 * nonce, so two SPA knocks of one window are both fine.
 */
import { isIP } from "node:net";
import { ExitCode, TknockError } from "../src/errors.js";
import { spaPort } from "../src/protocol/spa/keys.js";
import type { KnockMode } from "../src/protocol/spa/mode.js";
import { sealSpaPacket } from "../src/protocol/spa/packet.js";
import { MAX_SPA_PORTS, type SpaPayload } from "../src/protocol/spa/payload.js";
import { stepAt } from "../src/protocol/window.js";
import type { KnockTarget } from "./senders/sender.js";
import type { StoredProfile } from "./store.js";

/** What the user asked of SPA on the command line. */
export type SpaRequest = {
  /** --spa: use SPA on a profile of both modes. */
  readonly force: boolean;
  /** --open: a subset of the profile's ports; absent: all of them. */
  readonly open?: readonly number[];
  /** --allow-ip: the address to open instead of this host's own source address. */
  readonly allowIp?: string;
  /** --nat: open the address the packet arrives from (the server must allow it for this client). */
  readonly nat: boolean;
};

export type SpaReport = { readonly step: number; readonly port: number; readonly address: string; readonly ports: readonly number[] };

/** Whether this knock goes by SPA; a usage error when the flags ask for what the profile cannot do. */
export function usesSpa(entry: StoredProfile, req: SpaRequest | undefined): boolean {
  const mode: KnockMode = entry.profile.mode ?? "sequence";
  const spaFlags = req !== undefined && (req.open !== undefined || req.allowIp !== undefined || req.nat);
  if (mode === "sequence" && (req?.force === true || spaFlags)) {
    throw new TknockError(
      "TKNOCK_USAGE",
      `profile ${entry.name} knocks with a sequence only: --spa, --open, --allow-ip and --nat need a profile enrolled with --mode spa or both`,
      ExitCode.usage,
    );
  }
  return mode === "spa" || (mode === "both" && (req?.force === true || spaFlags));
}

/** Checks the request against the profile before anything is sent. */
export function checkSpaRequest(entry: StoredProfile, req: SpaRequest): void {
  const allowed = entry.profile.open;
  const extra = (req.open ?? []).filter((p) => !allowed.includes(p));
  if (extra.length > 0) {
    throw new TknockError("TKNOCK_USAGE", `--open ${extra.join(",")}: profile ${entry.name} may open only ${allowed.join(",")}`, ExitCode.usage);
  }
  if ((req.open?.length ?? 0) > MAX_SPA_PORTS) {
    throw new TknockError("TKNOCK_USAGE", `--open names more than ${MAX_SPA_PORTS} ports: leave it out to open all of the profile's ports`, ExitCode.usage);
  }
  if (req.nat && req.allowIp !== undefined) throw new TknockError("TKNOCK_USAGE", "--nat and --allow-ip exclude each other: give one", ExitCode.usage);
  if (req.allowIp !== undefined && isIP(req.allowIp) === 0) {
    throw new TknockError("TKNOCK_USAGE", `--allow-ip ${JSON.stringify(req.allowIp.slice(0, 64))} is not an IPv4 or IPv6 address`, ExitCode.usage);
  }
}

/**
 * Sends the SPA packet of the window at nowMs (the profile's time offset already applied by the caller).
 * `send` connects a UDP socket, tells the source address it got, and sends what the builder returns.
 */
export async function sendSpa(
  entry: StoredProfile,
  req: SpaRequest,
  target: KnockTarget,
  nowMs: number,
  send: (target: KnockTarget, port: number, build: (localAddress: string) => Buffer) => Promise<{ localAddress: string }>,
): Promise<SpaReport> {
  checkSpaRequest(entry, req);
  const { profile } = entry;
  const step = stepAt(nowMs, profile.periodSeconds);
  const port = spaPort(profile, step);
  const ports = req.open ?? [];
  let address = "";
  await send(target, port, (localAddress) => {
    address = req.nat ? "(as the server sees it)" : (req.allowIp ?? localAddress);
    const payload: SpaPayload = req.nat ? { ports, nat: true } : { ports, nat: false, address: req.allowIp ?? localAddress };
    return sealSpaPacket({ secret: profile.secret, step, timestampMs: Math.floor(nowMs), payload });
  });
  return { step, port, address, ports: ports.length > 0 ? ports : profile.open };
}
