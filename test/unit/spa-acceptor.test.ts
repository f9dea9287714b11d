import { describe, expect, it } from "vitest";
import { sealSpaPacket } from "../../src/protocol/spa/packet.js";
import type { SpaPayload } from "../../src/protocol/spa/payload.js";
import { SpaAcceptor, type SpaClient } from "../../server/spa/acceptor.js";
import { SPA_VECTORS } from "../vectors/spa-v1.js";

const P = 30;
const secretA = Buffer.from("alice-secret-0123456789abcdef012");
const secretB = Buffer.from("bob-secret-0123456789abcdef01234");
const alice: SpaClient = { name: "alice", profile: { secret: secretA, periodSeconds: P }, open: [22, 443], allowNat: false };
const bob: SpaClient = { name: "bob", profile: { secret: secretB, periodSeconds: P }, open: [22], allowNat: true };
const T0 = 56666666;
const nowAt = (step: number, intoMs = 5000): number => step * P * 1000 + intoMs;
const SRC = "198.18.0.1";

type PayloadChange = { ports?: number[]; address?: string | undefined; nat?: boolean };

function packet(secret: Buffer, step: number, change: PayloadChange = {}, timestampMs = nowAt(step)): Buffer {
  const nat = change.nat ?? false;
  const address = "address" in change ? change.address : SRC;
  const payload: SpaPayload = { ports: change.ports ?? [], nat, ...(address !== undefined ? { address } : {}) };
  return sealSpaPacket({ secret, step, timestampMs, payload });
}

function acceptor(opts: Partial<ConstructorParameters<typeof SpaAcceptor>[1]> = {}, nowMs = nowAt(T0)): SpaAcceptor {
  return new SpaAcceptor([alice, bob], { skewWindows: 1, ...opts }, nowMs);
}

describe("SPA acceptance", () => {
  it("when a valid packet arrives then it opens the client's ports once and its copy is refused as a replay", () => {
    const a = acceptor();
    const p = packet(secretA, T0);
    expect(a.onDatagram(p, SRC, nowAt(T0))).toEqual({ kind: "open", client: "alice", step: T0, src: SRC, address: SRC, ports: [22, 443] });
    expect(a.onDatagram(p, "198.18.0.9", nowAt(T0, 6000))).toMatchObject({ kind: "refuse", reason: "replay", client: "alice", src: "198.18.0.9" });
  });

  it("when the vector packet arrives in its window then the server opens what it names", () => {
    const v = SPA_VECTORS[0]!;
    const c: SpaClient = { name: "v", profile: { secret: Buffer.from("12345678901234567890123456789012"), periodSeconds: 30 }, open: [22], allowNat: false };
    const a = new SpaAcceptor([c], { skewWindows: 1 }, v.timestampMs);
    expect(a.onDatagram(Buffer.from(v.packetHex, "hex"), "203.0.113.7", v.timestampMs + 100)).toMatchObject({
      kind: "open",
      address: "198.18.0.1",
      ports: [22],
    });
  });

  it("when the payload names another address then that address is opened, not the source", () => {
    const d = acceptor().onDatagram(packet(secretA, T0, { address: "198.18.0.7" }), SRC, nowAt(T0));
    expect(d).toMatchObject({ kind: "open", src: SRC, address: "198.18.0.7" });
  });

  it("when nat is asked then the source opens only for a client allowed nat", () => {
    const a = acceptor();
    expect(a.onDatagram(packet(secretB, T0, { nat: true, address: undefined }), "203.0.113.5", nowAt(T0))).toMatchObject({
      kind: "open",
      client: "bob",
      address: "203.0.113.5",
    });
    expect(a.onDatagram(packet(secretA, T0, { nat: true, address: undefined }), "203.0.113.5", nowAt(T0))).toMatchObject({ kind: "refuse", reason: "nat" });
  });

  it("when a port outside the client's open ports is asked then it is refused; a subset opens only that", () => {
    const a = acceptor();
    expect(a.onDatagram(packet(secretB, T0, { ports: [443] }), SRC, nowAt(T0))).toMatchObject({ kind: "refuse", reason: "ports", client: "bob" });
    expect(a.onDatagram(packet(secretA, T0, { ports: [443] }), SRC, nowAt(T0))).toMatchObject({ kind: "open", ports: [443] });
  });

  it("when the packet is of a window T-s..T+s then it opens; beyond, its key id is unknown", () => {
    for (const x of [T0 - 1, T0, T0 + 1]) expect(acceptor().onDatagram(packet(secretA, x), SRC, nowAt(T0)).kind).toBe("open");
    for (const x of [T0 - 2, T0 + 2]) expect(acceptor().onDatagram(packet(secretA, x), SRC, nowAt(T0)).kind).toBe("unknown");
    expect(acceptor({ skewWindows: 0 }).onDatagram(packet(secretA, T0 - 1), SRC, nowAt(T0)).kind).toBe("unknown");
  });

  it("when the clock moves on then the windows follow and an old packet's key id is unknown", () => {
    const a = acceptor();
    const p = packet(secretA, T0);
    expect(a.onDatagram(p, SRC, nowAt(T0 + 2)).kind).toBe("unknown");
    expect(a.onDatagram(packet(secretA, T0 + 2), SRC, nowAt(T0 + 2)).kind).toBe("open");
    expect(a.stats().windows).toBe(6); // 2 clients x 3 windows
  });

  it("when the timestamp is not in the window of the key id then it is refused as skew", () => {
    const d = acceptor().onDatagram(packet(secretA, T0, {}, nowAt(T0 - 1)), SRC, nowAt(T0));
    expect(d).toMatchObject({ kind: "refuse", reason: "skew", client: "alice", step: T0 });
  });

  it("when a packet is sealed with another client's key under its key id then it is refused by the tag", () => {
    const forged = packet(secretB, T0);
    packet(secretA, T0).copy(forged, 1, 1, 9); // alice's key id, bob's key
    expect(acceptor().onDatagram(forged, SRC, nowAt(T0))).toMatchObject({ kind: "refuse", reason: "bad-tag", client: "alice" });
  });

  it("when the address is unspecified, multicast or broadcast then it is refused", () => {
    for (const address of ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"]) {
      expect(acceptor().onDatagram(packet(secretA, T0, { address }), SRC, nowAt(T0)), address).toMatchObject({ kind: "refuse", reason: "address" });
    }
  });

  it("when the state was lost then packets of windows that may have been accepted before are refused, later ones open", () => {
    const start = nowAt(T0);
    const a = acceptor({ failClosedAtMs: start }, start);
    expect(a.onDatagram(packet(secretA, T0 + 1), SRC, start)).toMatchObject({ kind: "refuse", reason: "replay" });
    expect(a.onDatagram(packet(secretA, T0 + 2), SRC, nowAt(T0 + 2))).toMatchObject({ kind: "open" });
  });

  it("when nonces come from the state file then their packets stay refused after a restart", () => {
    const first = acceptor();
    const p = packet(secretA, T0);
    expect(first.onDatagram(p, SRC, nowAt(T0)).kind).toBe("open");
    const second = acceptor({ nonces: first.nonceSnapshot(nowAt(T0)) });
    expect(second.onDatagram(p, SRC, nowAt(T0, 9000))).toMatchObject({ kind: "refuse", reason: "replay" });
  });

  it("when nonces expire then the cache forgets them (their packets could no longer be accepted anyway)", () => {
    const a = acceptor();
    expect(a.onDatagram(packet(secretA, T0), SRC, nowAt(T0)).kind).toBe("open");
    expect(a.nonceSnapshot(nowAt(T0 + 1, 29_999)).size).toBe(1);
    expect(a.nonceSnapshot(nowAt(T0 + 2, 0)).size).toBe(0);
  });

  it("when the replay cache is full then a new packet is refused, never an old nonce evicted", () => {
    const a = acceptor({ maxNonces: 2 });
    expect(a.onDatagram(packet(secretA, T0), SRC, nowAt(T0)).kind).toBe("open");
    expect(a.onDatagram(packet(secretA, T0), SRC, nowAt(T0)).kind).toBe("open");
    expect(a.onDatagram(packet(secretA, T0), SRC, nowAt(T0))).toMatchObject({ kind: "refuse", reason: "full" });
  });

  it("when a datagram is not shaped like SPA then it is the matcher's; random SPA-shaped bytes are unknown", () => {
    const a = acceptor();
    expect(a.onDatagram(Buffer.from([0]), SRC, nowAt(T0)).kind).toBe("not-spa");
    const junk = Buffer.alloc(60, 0);
    junk[0] = 1;
    junk.fill(7, 1, 9); // a key id nobody has
    expect(a.onDatagram(junk, SRC, nowAt(T0)).kind).toBe("unknown");
    expect(a.stats().unknown).toBe(1);
  });

  it("when a client is enrolled while running then its packets open at once", () => {
    const a = new SpaAcceptor([bob], { skewWindows: 1 }, nowAt(T0));
    a.setClients([alice, bob], nowAt(T0));
    expect(a.onDatagram(packet(secretA, T0), SRC, nowAt(T0)).kind).toBe("open");
  });

  it("when a client is revoked then its packets are unknown", () => {
    const a = acceptor();
    a.setClients([bob], nowAt(T0));
    expect(a.onDatagram(packet(secretA, T0), SRC, nowAt(T0)).kind).toBe("unknown");
  });
});
