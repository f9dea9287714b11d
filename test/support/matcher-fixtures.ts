/**
 * What the matcher and daemon tests share: a fixed step with a few seconds of it to knock in, profiles by seed,
 * clients, the daemon's matcher options, and a knock.
 */
import { defaultServerConfig } from "../../server/config/schema.js";
import type { KnockProto } from "../../src/ports.js";
import type { KnockProfile } from "../../src/protocol/profile.js";
import { stepStartMs } from "../../src/protocol/window.js";
import type { Decision } from "../../server/matcher/decision.js";
import type { Matcher, MatcherClient } from "../../server/matcher/matcher.js";
import { matcherOptionsFromConfig, type MatcherOptions } from "../../server/matcher/options.js";

export const PERIOD = 30;
/** The step of unix time 1700000000 with a 30 s period (protocol vector 1). */
export const T = 56_666_666;
/** A few seconds into step T, so T-1..T+1 stay put while a test knocks. */
export const T0_MS = stepStartMs(T, PERIOD) + 2000;

/** The daemon's defaults, fewer sources. */
export const MATCHER_OPTIONS: MatcherOptions = { ...matcherOptionsFromConfig(defaultServerConfig({ clientsFile: "/dev/null" })), maxSources: 1000 };

/** A 4-knock TCP profile over 10000-59999 whose secret is 32 bytes of `seed`. */
export function profile(seed: number, over: Partial<KnockProfile> = {}): KnockProfile {
  return {
    secret: new Uint8Array(32).fill(seed),
    periodSeconds: PERIOD,
    knocks: 4,
    portMin: 10000,
    portMax: 59999,
    exclude: [22],
    proto: "tcp",
    ...over,
  };
}

/** A client that opens port 22. */
export function client(name: string, p: KnockProfile, lastAcceptedStep?: number): MatcherClient {
  return { name, profile: p, open: [22], lastAcceptedStep };
}

export function knock(m: Matcher, src: string, dstPort: number, atMs: number, proto: KnockProto = "tcp"): Decision {
  return m.onKnock({ src, dstPort, proto, atMs });
}
