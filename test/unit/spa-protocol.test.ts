import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deriveSequence } from "../../src/protocol/derive.js";
import { decodeSecret } from "../../src/protocol/profile-uri.js";
import { spaKey, spaKeyId, spaPort } from "../../src/protocol/spa/keys.js";
import {
  looksLikeSpa,
  MAX_SPA_PACKET_BYTES,
  MIN_SPA_PACKET_BYTES,
  openSpaPacket,
  parseSpaHeader,
  sealSpaPacket,
  SPA_HEADER_BYTES,
} from "../../src/protocol/spa/packet.js";
import { decodeSpaPayload, encodeSpaPayload, formatIpv6, MAX_SPA_PORTS } from "../../src/protocol/spa/payload.js";
import { SPA_VECTORS, type SpaVector } from "../vectors/spa-v1.js";

function profileOf(v: SpaVector) {
  return {
    secret: decodeSecret(v.secretBase32),
    periodSeconds: v.periodSeconds,
    knocks: 4,
    portMin: v.portMin,
    portMax: v.portMax,
    exclude: v.exclude,
    proto: "udp" as const,
  };
}

/** What a server holding only this vector's window does with a datagram: the payload, or why not. */
function accept(v: SpaVector, bytes: Uint8Array): string | object {
  const h = parseSpaHeader(bytes);
  if (!h.ok) return h.reason;
  const secret = decodeSecret(v.secretBase32);
  if (h.keyId !== spaKeyId(secret, v.step).toString("hex")) return "unknown key id";
  const p = openSpaPacket(bytes, spaKey(secret, v.step));
  return p.ok ? { ports: p.ports, address: p.address, nat: p.nat, timestampMs: h.timestampMs, nonce: h.nonce } : p.reason;
}

describe("SPA v1 vectors", () => {
  for (const v of SPA_VECTORS) {
    it(`when sealing ${v.name} then port, key id, key and packet bytes match the spec`, () => {
      const secret = decodeSecret(v.secretBase32);
      expect(spaPort(profileOf(v), v.step)).toBe(v.spaPort);
      expect(spaKeyId(secret, v.step).toString("hex")).toBe(v.keyIdHex);
      expect(spaKey(secret, v.step).toString("hex")).toBe(v.keyHex);
      const packet = sealSpaPacket({ secret, step: v.step, timestampMs: v.timestampMs, nonce: Buffer.from(v.nonceHex, "hex"), payload: v.payload });
      expect(packet.toString("hex")).toBe(v.packetHex);
    });

    it(`when opening ${v.name} then the payload, time and nonce come back`, () => {
      expect(accept(v, Buffer.from(v.packetHex, "hex"))).toEqual({
        ports: v.payload.ports,
        address: v.payload.address,
        nat: v.payload.nat,
        timestampMs: v.timestampMs,
        nonce: v.nonceHex,
      });
    });

    it(`when any byte of ${v.name} is changed then the packet is refused`, () => {
      const good = Buffer.from(v.packetHex, "hex");
      for (let i = 0; i < good.length; i++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const bad = Buffer.from(good);
          bad[i] = bad[i]! ^ mask;
          expect(typeof accept(v, bad), `byte ${i} ^ ${mask}`).toBe("string");
        }
      }
    });

    it(`when ${v.name} is cut or extended then it is refused`, () => {
      const good = Buffer.from(v.packetHex, "hex");
      for (let n = 0; n < good.length; n++) expect(typeof accept(v, good.subarray(0, n))).toBe("string");
      expect(typeof accept(v, Buffer.concat([good, Buffer.from([0])]))).toBe("string");
    });
  }

  it("when the SPA port and the sequence of a step are derived then they come from different keystreams", () => {
    const v = SPA_VECTORS[0]!;
    // Vector 1 of v1.ts is this secret and step: its sequence starts at 34366.
    expect(deriveSequence(profileOf(v), v.step)[0]).toBe(34366);
    expect(spaPort(profileOf(v), v.step)).not.toBe(34366);
  });

  it("when the key id of two steps is compared then it differs (an observer cannot link packets)", () => {
    const secret = decodeSecret(SPA_VECTORS[0]!.secretBase32);
    expect(spaKeyId(secret, 1).equals(spaKeyId(secret, 2))).toBe(false);
  });
});

describe("SPA v1 parsing of anyone's bytes", () => {
  it("when random bytes of any length are parsed then nothing throws and nothing opens", () => {
    const v = SPA_VECTORS[0]!;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: MAX_SPA_PACKET_BYTES + 8 }), (b) => {
        expect(typeof accept(v, b)).toBe("string");
        expect(() => decodeSpaPayload(b)).not.toThrow();
      }),
      { numRuns: 2000 },
    );
  });

  it("when a packet carries the right key id but random bytes after it then it is refused by the tag", () => {
    const v = SPA_VECTORS[0]!;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: MIN_SPA_PACKET_BYTES - SPA_HEADER_BYTES, maxLength: MAX_SPA_PACKET_BYTES - SPA_HEADER_BYTES }), (rest) => {
        const head = Buffer.from(v.packetHex, "hex").subarray(0, SPA_HEADER_BYTES);
        expect(accept(v, Buffer.concat([head, rest]))).toBe("tag");
      }),
      { numRuns: 300 },
    );
  });

  it("when the length or version is off then the header refusal names it", () => {
    expect(parseSpaHeader(Buffer.alloc(MIN_SPA_PACKET_BYTES - 1, 1))).toMatchObject({ ok: false, reason: "length" });
    expect(parseSpaHeader(Buffer.alloc(MAX_SPA_PACKET_BYTES + 1, 1))).toMatchObject({ ok: false, reason: "length" });
    expect(parseSpaHeader(Buffer.alloc(MIN_SPA_PACKET_BYTES, 2))).toMatchObject({ ok: false, reason: "version" });
    const farFuture = Buffer.alloc(MIN_SPA_PACKET_BYTES, 1);
    farFuture.fill(0xff, 9, 17);
    expect(parseSpaHeader(farFuture)).toMatchObject({ ok: false, reason: "timestamp" });
    expect(looksLikeSpa(Buffer.from([0]))).toBe(false); // a UDP knock of the sequence protocol
    expect(MAX_SPA_PACKET_BYTES).toBe(80); // IPv6 + UDP + 80 = 128, the NFLOG rule's copy
  });

  it("when payloads round-trip then every layout rule holds", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: MAX_SPA_PORTS }),
        fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant(undefined)),
        (ports, address) => {
          const p = address === undefined ? { ports, nat: true } : { ports, address, nat: false };
          const back = decodeSpaPayload(encodeSpaPayload(p));
          expect(back).toMatchObject({ ok: true, ports, nat: p.nat });
          if (address !== undefined && back.ok) {
            // Canonical text either way: what the listener would print for that address.
            expect(encodeSpaPayload({ ports, address: back.address!, nat: false })).toEqual(encodeSpaPayload(p));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("when a payload breaks the layout then decoding refuses it", () => {
    const cases: [string, number[]][] = [
      ["reserved flag", [0x02, 4, 1, 2, 3, 4, 0]],
      ["family 5", [0, 5, 1, 2, 3, 4, 0]],
      ["nat with an address", [1, 4, 1, 2, 3, 4, 0]],
      ["no address without nat", [0, 0, 0]],
      ["7 ports", [1, 0, 7, ...Array.from({ length: 7 }, (_, i) => [0, i + 1]).flat()]],
      ["count beyond the end", [1, 0, 2, 0, 22]],
      ["port 0", [1, 0, 1, 0, 0]],
      ["a port twice", [1, 0, 2, 0, 22, 0, 22]],
      ["trailing byte", [1, 0, 1, 0, 22, 9]],
    ];
    for (const [why, bytes] of cases) expect(decodeSpaPayload(Buffer.from(bytes)).ok, why).toBe(false);
  });

  it("when an IPv6 address is formatted then it is RFC 5952 text", () => {
    const b = Buffer.alloc(16);
    b[0] = 0xfd;
    b[1] = 0x18;
    b[3] = 0x18;
    b[15] = 1;
    expect(formatIpv6(b)).toBe("fd18:18::1");
    expect(formatIpv6(Buffer.alloc(16))).toBe("::");
  });
});
