import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { InvalidUriError } from "../../src/errors.js";
import { decodeSecret, defaultProfileFields, formatProfileUri, parseProfileUri } from "../../src/protocol/profile-uri.js";
import { formatSequence } from "../../src/protocol/sequence-text.js";

const base = { client: "alice", host: "srv.example", open: [22], secret: decodeSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), ...defaultProfileFields([22]) };

function parameterOf(uri: string): string | undefined {
  try {
    parseProfileUri(uri);
    return undefined;
  } catch (err) {
    return err instanceof InvalidUriError ? err.parameter : "other";
  }
}

describe("mode in the enrolment URI", () => {
  it("when a profile knocks with SPA then the URI ends with mode=spa and reads back", () => {
    const uri = formatProfileUri({ ...base, mode: "spa" });
    expect(uri).toMatch(/&open=22&mode=spa$/);
    expect(parseProfileUri(uri).mode).toBe("spa");
    expect(parseProfileUri(formatProfileUri({ ...base, mode: "both" })).mode).toBe("both");
  });

  it("when the mode is sequence or absent then the URI has no mode and the profile none", () => {
    const uri = formatProfileUri({ ...base, mode: "sequence" });
    expect(uri).not.toContain("mode=");
    expect("mode" in parseProfileUri(uri)).toBe(false);
    expect("mode" in parseProfileUri(`${uri}&mode=sequence`)).toBe(false);
  });

  it("when the mode is unknown or empty then the URI is refused naming mode", () => {
    const uri = formatProfileUri(base);
    expect(parameterOf(`${uri}&mode=SPA`)).toBe("mode");
    expect(parameterOf(`${uri}&mode=`)).toBe("mode");
    // addr is checked before mode (docs/protocol.md §7.2 rule 12)
    expect(parameterOf(`${uri}&addr=a%20b&mode=x`)).toBe("addr");
  });
});

describe("the SPA shell check of docs/protocol.md section 10.6", () => {
  const doc = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");
  const checks = [...doc.matchAll(/sequence --json --at (\d+) \\\n\s+--uri '([^']+)'\n# (\{.*\})/g)];

  it("when the doc's SPA URI is printed by `sequence --json` then the doc's answer comes out", () => {
    expect(checks).toHaveLength(1);
    for (const [, at, uri, expected] of checks) {
      expect(JSON.parse(formatSequence(parseProfileUri(uri ?? ""), Number(at) * 1000, true))).toEqual(JSON.parse(expected ?? ""));
    }
  });
});
