import { describe, expect, it } from "vitest";
import { sequenceAt } from "../../src/protocol/derive.js";
import { decodeSecret } from "../../src/protocol/profile-uri.js";
import { VECTORS } from "../vectors/v1.js";

describe("protocol v1 vectors", () => {
  for (const v of VECTORS) {
    it(`when deriving ${v.name} then the step and ports match the spec`, () => {
      const profile = { ...v, secret: decodeSecret(v.secretBase32), proto: "tcp" as const };
      expect(sequenceAt(profile, v.atUnixSeconds * 1000)).toEqual({ step: v.step, ports: v.ports });
    });
  }
});
