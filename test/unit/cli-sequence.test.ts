import { memoryIo } from "../support/memory-io.js";
import { describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { runCli } from "../../src/cli-io.js";
import { decodeSecret, formatProfileUri } from "../../src/protocol/profile-uri.js";
import { VECTORS } from "../vectors/v1.js";

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
const URI =
  `otpauth://totp/tknock:alice@host.example?secret=${SECRET}&issuer=tknock&algorithm=SHA256&digits=6&period=30` +
  "&v=1&knocks=4&ports=10000-59999&exclude=22&proto=tcp&open=22";

/** Runs `tknock ARGS` in memory; the clock reads `nowMs` so no test depends on the wall clock. */
async function tknock(args: readonly string[], nowMs = 0): Promise<{ code: number; out: string[]; err: string[] }> {
  const { io, out, err } = memoryIo({ nowMs });
  const code = await runCli(createClientCli(io), args, io);
  return { code, out, err };
}

describe("tknock sequence --uri", () => {
  it("when vector 1's URI is given --at 1700000000 --json then it prints the spec's step and ports", async () => {
    const r = await tknock(["sequence", "--uri", URI, "--at", "1700000000", "--json"]);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out).toEqual(['{"step":56666666,"ports":[34366,56589,52159,24766],"proto":"tcp"}']);
  });

  for (const v of VECTORS) {
    it(`when ${v.name} is given as a URI then the printed ports are the vector's`, async () => {
      const uri = formatProfileUri({
        ...v,
        secret: decodeSecret(v.secretBase32),
        proto: "udp",
        client: "vec",
        host: "198.18.0.2",
        open: [22],
      });
      const r = await tknock(["sequence", "--uri", uri, "--at", String(v.atUnixSeconds), "--json"]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out.join("\n"))).toEqual({ step: v.step, ports: v.ports, proto: "udp" });
    });
  }

  it("when --at is left out then the injected clock's time is used", async () => {
    const r = await tknock(["sequence", "--uri", URI, "--json"], 1_700_000_000_000);
    expect(JSON.parse(r.out.join("\n"))).toEqual({ step: 56666666, ports: [34366, 56589, 52159, 24766], proto: "tcp" });
  });

  it("when --json is left out then one human line holds the step and the ports in order", async () => {
    const r = await tknock(["sequence", "--uri", URI, "--at", "1700000000"]);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toMatch(/56666666\D+34366\D+56589\D+52159\D+24766/);
  });

  const bad: { name: string; uri: string; parameter: string }[] = [
    { name: "knocks=99", uri: URI.replace("knocks=4", "knocks=99"), parameter: "knocks" },
    { name: "period=abc", uri: URI.replace("period=30", "period=abc"), parameter: "period" },
    { name: "no secret", uri: URI.replace(`secret=${SECRET}&`, ""), parameter: "secret" },
    { name: "proto=sctp", uri: URI.replace("proto=tcp", "proto=sctp"), parameter: "proto" },
  ];
  for (const c of bad) {
    it(`when the URI has ${c.name} then it exits 1 with one line naming ${c.parameter}`, async () => {
      const r = await tknock(["sequence", "--uri", c.uri, "--at", "1700000000", "--json"]);
      expect(r.code).toBe(1);
      expect(r.out).toEqual([]);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toContain(c.parameter);
      expect(r.err[0]).not.toContain(SECRET.slice(0, 16));
    });
  }

  it("when --at is 2^40 (the documented bound) then it prints that time's step", async () => {
    const r = await tknock(["sequence", "--uri", URI, "--at", String(2 ** 40), "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join("\n")).step).toBe(Math.floor(2 ** 40 / 30));
  });

  it("when --at is 2^40 + 1 then it exits 1 naming --at without printing a sequence", async () => {
    const r = await tknock(["sequence", "--uri", URI, "--at", String(2 ** 40 + 1), "--json"]);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([]);
    expect(r.err.join("\n")).toContain("--at");
  });

  it("when --at is not a number then it exits 1 without printing a sequence", async () => {
    const r = await tknock(["sequence", "--uri", URI, "--at", "soon", "--json"]);
    expect(r.code).toBe(1);
    expect(r.out.join("\n")).not.toContain("ports");
  });
});
