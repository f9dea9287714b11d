/**
 * The pcap listener against the real tcpdump, in a two-host lab: client 198.18.0.1 knocks server 198.18.0.2.
 * The listener runs in this process and starts tcpdump inside the server's namespace (argvPrefix).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ObservedKnock } from "../../src/ports.js";
import { checkTcpdump, createPcapListener, type PcapListener, type LogLevel } from "../../server/listeners/pcap/listener.js";
import { Lab, removeStaleLabs } from "../../lab/lab.js";
import { describeAsRoot } from "../support/root.js";
import { sleep, waitFor } from "../support/wait.js";

const RANGE = { min: 40000, max: 40099 };

type LogLine = { level: LogLevel; message: string; fields: Record<string, unknown> };

function brief(knocks: readonly ObservedKnock[]): string[] {
  return knocks.map((k) => `${k.proto} ${k.src} ${k.dstPort}`);
}

describeAsRoot("pcap listener with tcpdump in a namespace lab", () => {
  let lab: Lab;

  beforeAll(async () => {
    await removeStaleLabs();
    lab = await Lab.create(["client", "server"]);
    // A service inside the knock range: its handshake's ACK and FIN must not look like knocks.
    lab.spawn("server", ["node", "-e", `require("net").createServer((s) => s.end("hi")).listen(${RANGE.min + 50}, "::")`]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  /** One SYN (the closed port answers RST, so no retransmission) or one datagram, from the client. */
  async function tcp(address: string, port: number): Promise<void> {
    await lab.exec("client", ["timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/${address}/${port}; cat <&3 >/dev/null`]);
  }
  async function udp(address: string, port: number): Promise<void> {
    await lab.exec("client", ["bash", "-c", `echo knock >/dev/udp/${address}/${port}`]);
  }

  function startListener(ifname: string): { listener: PcapListener; knocks: ObservedKnock[]; logs: LogLine[]; stop: () => Promise<void> } {
    const server = lab.host("server");
    const knocks: ObservedKnock[] = [];
    const logs: LogLine[] = [];
    const listener = createPcapListener({
      interface: ifname,
      knockRange: RANGE,
      localAddresses: [server.ipv4, server.ipv6],
      argvPrefix: ["ip", "netns", "exec", server.ns],
      bufferKiB: 1024,
      log: (level, message, fields) => logs.push({ level, message, fields }),
      backoff: { initialMs: 100, maxMs: 1000 },
    });
    const ac = new AbortController();
    const running = listener.run((k) => knocks.push(k), ac.signal);
    return {
      listener,
      knocks,
      logs,
      stop: async () => {
        ac.abort();
        await running;
      },
    };
  }

  for (const ifname of ["eth0", "any"]) {
    it(`when the client knocks (${ifname}) then exactly those knocks arrive in order, also after tcpdump is killed`, async () => {
      const server = lab.host("server");
      const { listener, knocks, logs, stop } = startListener(ifname);
      try {
        await waitFor("tcpdump capturing", () => listener.captureState().capturing);

        // At once: libpcap runs the filter in userland on the first ring block, the first knock must survive it.
        await tcp(server.ipv4, 40001);
        await tcp(server.ipv4, RANGE.max + 1); // outside the range
        await udp(server.ipv4, 40002);
        await udp(server.ipv4, RANGE.min - 1); // outside the range
        await tcp(server.ipv6, 40003);
        await udp(server.ipv6, 40004);
        await tcp(server.ipv4, RANGE.min + 50); // a full handshake: only its SYN is a knock
        await waitFor("five knocks", () => knocks.length >= 5);
        await sleep(300); // stragglers, if any, would show up now
        expect(brief(knocks)).toEqual(["tcp 198.18.0.1 40001", "udp 198.18.0.1 40002", "tcp fd18:18::1 40003", "udp fd18:18::1 40004", "tcp 198.18.0.1 40050"]);
        const times = knocks.map((k) => k.atMs);
        expect(times).toEqual([...times].sort((a, b) => a - b));

        const stats = await listener.requestCaptureStats();
        expect(stats).toMatchObject({ receivedByFilter: 5, droppedByKernel: 0 });

        // tcpdump dies: the listener logs it, starts another and keeps delivering.
        const pid = listener.captureState().pid;
        expect(pid).toBeGreaterThan(0);
        process.kill(pid as number, "SIGKILL");
        await waitFor("a restarted tcpdump", () => listener.stats().starts === 2 && listener.captureState().capturing);
        expect(listener.captureState().pid).not.toBe(pid);
        expect(logs.some((l) => l.level === "warn" && l.fields["signal"] === "SIGKILL")).toBe(true);

        await udp(server.ipv4, 40005);
        await tcp(server.ipv6, 40006);
        await waitFor("two more knocks", () => knocks.length >= 7);
        expect(brief(knocks.slice(5))).toEqual(["udp 198.18.0.1 40005", "tcp fd18:18::1 40006"]);
        expect(listener.stats()).toMatchObject({ knocks: 7, malformed: 0, starts: 2, kernelDrops: 0 });

        const last = listener.captureState().pid as number;
        await stop();
        expect(listener.captureState()).toMatchObject({ running: false, capturing: false });
        expect(() => process.kill(last, 0)).toThrow(); // tcpdump is gone
      } finally {
        await stop();
      }
    });
  }

  it("when crafted SYN+FIN and SYN+RST segments reach the range then none is a knock (the kernel filter drops them) and a plain SYN still is", async () => {
    const server = lab.host("server");
    const { listener, knocks, stop } = startListener("eth0");
    try {
      await waitFor("tcpdump capturing", () => listener.captureState().capturing);
      for (const flags of ["SYNFIN", "SYNRST"]) {
        for (const [family, address] of [
          ["-4", server.ipv4],
          ["-6", server.ipv6],
        ] as const) {
          const r = await lab.exec("client", ["nmap", family, "-Pn", "-n", "-sS", "--scanflags", flags, "--max-retries", "0", "-p", "40010", address], {
            timeoutMs: 30_000,
          });
          expect(r.code, r.stderr).toBe(0);
        }
      }
      await tcp(server.ipv4, 40011);
      await waitFor("the plain SYN", () => knocks.length >= 1);
      await sleep(300);
      expect(brief(knocks)).toEqual(["tcp 198.18.0.1 40011"]);
      expect(await listener.requestCaptureStats()).toMatchObject({ receivedByFilter: 1 });
    } finally {
      await stop();
    }
  });

  for (const ifname of ["any", "lo"]) {
    it(`when the server knocks itself over loopback (${ifname}) then the knock arrives once, not once per direction`, async () => {
      const server = lab.host("server");
      const { listener, knocks, stop } = startListener(ifname);
      try {
        await waitFor("tcpdump capturing", () => listener.captureState().capturing);
        await lab.exec("server", ["bash", "-c", `echo knock >/dev/udp/${server.ipv4}/40007`]);
        await lab.exec("server", ["bash", "-c", `echo knock >/dev/udp/${server.ipv4}/40008`]);
        await waitFor("two knocks", () => knocks.length >= 2);
        await sleep(300);
        expect(brief(knocks)).toEqual(["udp 198.18.0.2 40007", "udp 198.18.0.2 40008"]);
      } finally {
        await stop();
      }
    });
  }

  it("when the interface does not exist then tcpdump's complaint is logged and it is retried with backoff", async () => {
    const { listener, logs, stop } = startListener("nosuch0");
    try {
      await waitFor("three attempts", () => listener.stats().starts >= 3);
      const warn = logs.find((l) => l.level === "warn");
      expect(warn?.fields["stderr"]).toEqual(expect.stringContaining("nosuch0"));
      expect(warn?.fields["exitCode"]).not.toBe(0);
    } finally {
      await stop();
    }
  });
});

describe("pcap listener without tcpdump", () => {
  it("when the tcpdump binary is missing then checkTcpdump fails with TKNOCK_TCPDUMP_MISSING", async () => {
    await expect(checkTcpdump("/nonexistent/tcpdump")).rejects.toMatchObject({ code: "TKNOCK_TCPDUMP_MISSING" });
  });

  it("when the tcpdump binary is missing then run logs how to install it, retries, and stops on abort", async () => {
    const logs: LogLine[] = [];
    const listener = createPcapListener({
      interface: "lo",
      knockRange: RANGE, // no localAddresses: this host's, read from its interfaces
      tcpdumpPath: "/nonexistent/tcpdump",
      log: (level, message, fields) => logs.push({ level, message, fields }),
      backoff: { initialMs: 20, maxMs: 40 },
    });
    const ac = new AbortController();
    const running = listener.run(() => {}, ac.signal);
    await waitFor("three attempts", () => listener.stats().starts >= 3);
    ac.abort();
    await running;
    const errors = logs.filter((l) => l.level === "error");
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors[0]?.fields["code"]).toBe("TKNOCK_TCPDUMP_MISSING");
    expect(listener.captureState().running).toBe(false);
  });

  it("when the options are invalid then creating the listener fails with TKNOCK_INVALID_CAPTURE", () => {
    expect(() => createPcapListener({ interface: "eth0", knockRange: { min: 10, max: 5 } })).toThrow(
      expect.objectContaining({ code: "TKNOCK_INVALID_CAPTURE" }),
    );
    expect(() => createPcapListener({ interface: "eth0", knockRange: RANGE, localAddresses: ["nope"] })).toThrow(
      expect.objectContaining({ code: "TKNOCK_INVALID_CAPTURE" }),
    );
  });
});
