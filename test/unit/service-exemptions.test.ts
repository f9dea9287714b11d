import { afterEach, describe, expect, it, vi } from "vitest";
import type { ListeningSocket, ParsedProcNet } from "../../server/local-services.js";
import { enrollExclusions, knockExclusions, MAX_SERVICE_EXCLUSIONS, ServiceWatch, servicesInRange } from "../../server/service-exemptions.js";
import type { ServicePort } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { validateProfile } from "../../src/protocol/profile.js";

const RANGE = { min: 10000, max: 59999 };

function sock(proto: "tcp" | "udp", port: number, address = "0.0.0.0"): ListeningSocket {
  const loopback = address.startsWith("127.") || address === "::1";
  return { proto, family: address.includes(":") ? 6 : 4, address, port, loopback };
}

type LogFn = (fields: Record<string, unknown>, message: string) => void;

function recordingLog() {
  return { warn: vi.fn<LogFn>(), error: vi.fn<LogFn>() };
}

describe("servicesInRange", () => {
  it("when services listen inside and outside the range and on a protected port then only the unprotected ones inside count", () => {
    const services: ServicePort[] = [
      { proto: "udp", port: 51820 },
      { proto: "tcp", port: 22 },
      { proto: "tcp", port: 60000 },
      { proto: "tcp", port: 10000 },
      { proto: "tcp", port: 20000 },
    ];
    expect(servicesInRange(services, RANGE, [20000])).toEqual([
      { proto: "tcp", port: 10000 },
      { proto: "udp", port: 51820 },
    ]);
  });
});

describe("knockExclusions", () => {
  it("when services listen in the range then their ports follow the protected ports, once each, whatever the protocol", () => {
    const r = knockExclusions({
      protect: [22],
      services: [
        { proto: "udp", port: 51820 },
        { proto: "tcp", port: 51820 },
        { proto: "tcp", port: 8080 },
        { proto: "tcp", port: 40000 },
      ],
      portMin: RANGE.min,
      portMax: RANGE.max,
    });
    expect(r).toEqual({ exclude: [22, 40000, 51820], leftOut: [] });
  });

  it("when more services listen than the URI has room for then the first ones are excluded, the rest named, and the URI stays valid", () => {
    const services = Array.from({ length: MAX_SERVICE_EXCLUSIONS + 10 }, (_, i): ServicePort => ({ proto: "tcp", port: 59999 - i }));
    const r = knockExclusions({ protect: [22], services, portMin: RANGE.min, portMax: RANGE.max });
    expect(r.exclude).toHaveLength(MAX_SERVICE_EXCLUSIONS + 1);
    expect(r.leftOut).toHaveLength(10);
    expect(r.leftOut).toEqual(Array.from({ length: 10 }, (_, i) => 59990 + i));
    const uri = r.exclude.join(",");
    expect(uri.length).toBeLessThan(512);
  });

  it("when the range is small and full of services then at least half of it stays knockable and derivation works", () => {
    const services = Array.from({ length: 300 }, (_, i): ServicePort => ({ proto: "udp", port: 20000 + i }));
    const r = knockExclusions({ protect: [22], services, portMin: 20000, portMax: 20099 });
    expect(r.exclude.filter((p) => p >= 20000 && p <= 20099)).toHaveLength(50);
    const profile = validateProfile({
      secret: new Uint8Array(32).fill(7),
      periodSeconds: 30,
      knocks: 16,
      portMin: 20000,
      portMax: 20099,
      exclude: r.exclude,
      proto: "tcp",
    });
    for (let step = 0; step < 50; step++) expect(deriveSequence(profile, step).every((p) => !r.exclude.includes(p))).toBe(true);
  });
});

describe("enrollExclusions", () => {
  it("when services listen in the range then the note names them; loopback-only ones are not excluded", async () => {
    const parsed: ParsedProcNet = { sockets: [sock("udp", 51820), sock("tcp", 40000, "127.0.0.1"), sock("tcp", 22)], malformed: 0 };
    const r = await enrollExclusions({ protect: [22], knockRange: RANGE }, async () => parsed);
    expect(r.exclude).toEqual([22, 51820]);
    expect(r.notes.join("\n")).toContain("51820");
    expect(r.notes.join("\n")).not.toContain("40000");
  });

  it("when the sockets cannot be read then only the protected ports are excluded and a note says why", async () => {
    const r = await enrollExclusions({ protect: [22, 2222], knockRange: RANGE }, () => Promise.reject(new Error("EACCES: /proc/net/tcp")));
    expect(r.exclude).toEqual([22, 2222]);
    expect(r.notes).toHaveLength(1);
    expect(r.notes[0]).toContain("EACCES");
  });
});

describe("ServiceWatch", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function watchOver(reads: (() => ParsedProcNet)[], gate: { protect: readonly number[] } = { protect: [22] }) {
    const log = recordingLog();
    let i = 0;
    const watch = new ServiceWatch({
      read: async () => (reads[Math.min(i++, reads.length - 1)] as () => ParsedProcNet)(),
      log,
      gate: () => ({ knockRange: RANGE, protect: gate.protect }),
    });
    return { watch, log };
  }
  const of =
    (...sockets: ListeningSocket[]) =>
    (): ParsedProcNet => ({ sockets, malformed: 0 });

  it("when a service in the range appears then refresh reports a change once and it is warned about once, naming port and protocol", async () => {
    const { watch, log } = watchOver([of(), of(sock("udp", 51820)), of(sock("udp", 51820)), of(), of(sock("udp", 51820))]);
    expect(await watch.refresh()).toBe(false);
    expect(await watch.refresh()).toBe(true);
    expect(watch.current).toEqual([{ proto: "udp", port: 51820 }]);
    expect(await watch.refresh()).toBe(false);
    expect(await watch.refresh()).toBe(true);
    expect(watch.current).toEqual([]);
    expect(await watch.refresh()).toBe(true);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn.mock.calls[0]?.[0]).toMatchObject({ proto: "udp", port: 51820 });
    expect(log.warn.mock.calls[0]?.[1]).toMatch(/udp\/51820.*left reachable/);
  });

  it("when a service listens on a protected port, outside the range or on loopback only then it is neither exempted nor warned about", async () => {
    const { watch, log } = watchOver([of(sock("tcp", 22), sock("tcp", 8080), sock("tcp", 40000, "::1"), sock("tcp", 30000))], { protect: [22, 30000] });
    expect(await watch.refresh()).toBe(false);
    expect(watch.current).toEqual([]);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it("when a port becomes protected by a reload then it leaves the exempted set at once, without a new read", async () => {
    const gate = { protect: [22] as readonly number[] };
    const { watch } = watchOver([of(sock("tcp", 30000), sock("udp", 51820))], gate);
    await watch.refresh();
    expect(watch.current).toHaveLength(2);
    gate.protect = [22, 30000];
    expect(watch.current).toEqual([{ proto: "udp", port: 51820 }]);
  });

  it("when reading fails then the last known services stay and the error is logged once until reads work again", async () => {
    const fail = (): ParsedProcNet => {
      throw new Error("EMFILE");
    };
    const { watch, log } = watchOver([of(sock("tcp", 40000)), fail, fail, of(sock("tcp", 40000)), fail]);
    await watch.refresh();
    expect(await watch.refresh()).toBe(false);
    expect(await watch.refresh()).toBe(false);
    expect(watch.current).toEqual([{ proto: "tcp", port: 40000 }]);
    expect(log.error).toHaveBeenCalledTimes(1);
    await watch.refresh();
    await watch.refresh();
    expect(log.error).toHaveBeenCalledTimes(2);
  });

  it("when watching then apply runs after a change only, one at a time, and a failed apply is retried at the next poll", async () => {
    vi.useFakeTimers();
    const { watch, log } = watchOver([of(), of(), of(sock("tcp", 40000)), of(sock("tcp", 40000))]);
    await watch.refresh();
    let calls = 0;
    let release: (() => void) | undefined;
    let failNext = true;
    const stop = watch.watch(100, () => {
      calls++;
      if (failNext) {
        failNext = false;
        return Promise.reject(new Error("nft busy"));
      }
      return new Promise<void>((r) => (release = r));
    });
    await vi.advanceTimersByTimeAsync(100); // same as before: nothing to apply
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(100); // tcp/40000 appears: apply fails
    expect(calls).toBe(1);
    expect(log.error).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(100); // retried
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(500); // still running, nothing changed: no second call
    expect(calls).toBe(2);
    release?.();
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toBe(2);
    stop();
  });
});
