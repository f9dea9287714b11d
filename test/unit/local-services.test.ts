/**
 * The /proc/net parser on real captures (test/fixtures/proc-net, taken in a lab namespace on x86-64 with node
 * servers bound as listed below) and on hand-made edge cases.
 *
 * Fixture sockets: TCP listening on 0.0.0.0:40050, 127.0.0.1:40051, [::]:40052, [::1]:40053,
 * [::ffff:127.0.0.1]:40054, [fd18:18::1]:40055, 198.18.0.1:40056, [::ffff:198.18.0.1]:40057, plus one
 * established connection to 40050 (both ends). UDP bound on 0.0.0.0:51820, 127.0.0.1:40060, [::]:40061,
 * [::1]:40062, [::ffff:127.0.0.1]:40063, 198.18.0.1:40064, plus a connected udp4 socket (to 51820) and a
 * connected udp6 socket (to 40061).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseProcNet, PROC_NET_TABLES, reachableServices, readListeningSockets } from "../../server/local-services.js";
import { parseSs, ssListeningSocketsReader } from "../../server/listening-sockets-ss.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/proc-net", import.meta.url));
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), "latin1");
const summary = (text: string, table: keyof typeof PROC_NET_TABLES): string[] =>
  parseProcNet(text, PROC_NET_TABLES[table], "LE").sockets.map((s) => `${s.address} ${s.port}${s.loopback ? " lo" : ""}`);

describe("parseProcNet on real captures", () => {
  it("when /proc/net/tcp is read then the IPv4 listeners are found with their addresses and established sockets are not", () => {
    expect(summary(fixture("tcp"), "tcp")).toEqual(["198.18.0.1 40056", "127.0.0.1 40051 lo", "0.0.0.0 40050"]);
  });

  it("when /proc/net/tcp6 is read then IPv6 and v4-mapped listeners are found, loopback ones marked", () => {
    expect(summary(fixture("tcp6"), "tcp6")).toEqual(["::ffff:198.18.0.1 40057", "fd18:18::1 40055", "::ffff:127.0.0.1 40054 lo", "::1 40053 lo", ":: 40052"]);
  });

  it("when /proc/net/udp is read then unconnected sockets count and the connected one does not", () => {
    expect(summary(fixture("udp"), "udp")).toEqual(["0.0.0.0 51820", "127.0.0.1 40060 lo", "198.18.0.1 40064"]);
  });

  it("when /proc/net/udp6 is read then unconnected sockets count and the connected one does not", () => {
    expect(summary(fixture("udp6"), "udp6")).toEqual([":: 40061", "::1 40062 lo", "::ffff:127.0.0.1 40063 lo"]);
  });

  it("when every table is read then the services other hosts can reach are listed once per protocol and port, loopback ones left out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tknock-proc-net-"));
    try {
      for (const f of ["tcp", "tcp6", "udp", "udp6"]) writeFileSync(join(dir, f), fixture(f));
      // The same port on another protocol, and a second socket on a port already listed (SO_REUSEPORT).
      writeFileSync(
        join(dir, "tcp"),
        `${fixture("tcp")}   9: 00000000:CA6C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   10: 00000000:9C72 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n`,
      );
      const parsed = await readListeningSockets(dir);
      expect(parsed.malformed).toBe(0);
      expect(reachableServices(parsed.sockets)).toEqual([
        { proto: "tcp", port: 40050 },
        { proto: "tcp", port: 40052 },
        { proto: "tcp", port: 40055 },
        { proto: "tcp", port: 40056 },
        { proto: "tcp", port: 40057 },
        { proto: "tcp", port: 51820 },
        { proto: "udp", port: 40061 },
        { proto: "udp", port: 40064 },
        { proto: "udp", port: 51820 },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("when a table file is missing (IPv6 disabled) then it counts as empty", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tknock-proc-net-"));
    try {
      writeFileSync(join(dir, "udp"), fixture("udp"));
      expect(reachableServices((await readListeningSockets(dir)).sockets)).toEqual([
        { proto: "udp", port: 40064 },
        { proto: "udp", port: 51820 },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("when this process reads its own namespace then a TCP server it just started is listed", async () => {
    const net = await import("node:net");
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
    try {
      const port = (server.address() as { port: number }).port;
      expect(reachableServices((await readListeningSockets()).sockets)).toContainEqual({ proto: "tcp", port });
    } finally {
      server.close();
    }
  });
});

describe("parseProcNet edge cases", () => {
  const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

  it("when the host is big-endian then addresses are read in network order", () => {
    const line = "   0: 7F000001:9C73 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
    expect(parseProcNet(HEADER + line, PROC_NET_TABLES.tcp, "BE").sockets).toEqual([
      { proto: "tcp", family: 4, address: "127.0.0.1", port: 40051, loopback: true },
    ]);
  });

  it("when a line is garbage, truncated or has an address of the wrong length then it is counted as malformed and skipped", () => {
    const good = "   3: 00000000:9C72 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
    const text = `${HEADER}garbage\n   1: 0000:9C72 00000000:0000 0A\n   2: 00000000:9C72\n${good}`;
    const parsed = parseProcNet(text, PROC_NET_TABLES.tcp, "LE");
    expect(parsed.malformed).toBe(3);
    expect(parsed.sockets.map((s) => s.port)).toEqual([40050]);
  });

  it("when the table has over 10000 lines (a wider line number) then listeners are still found and connections skipped", () => {
    const listen = "10000: 00000000:9C72 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
    const established = "123456: 010012C6:BA54 010012C6:9C72 01 00000000:00000000 00:00000000 00000000     0        0 2 2 0 20 0 0 10 -1\n";
    const parsed = parseProcNet(HEADER + established + listen + established, PROC_NET_TABLES.tcp, "LE");
    expect(parsed).toEqual({ sockets: [{ proto: "tcp", family: 4, address: "0.0.0.0", port: 40050, loopback: false }], malformed: 0 });
  });

  it("when a TCP socket is in another state than LISTEN then it is not a service", () => {
    const timeWait = "   0: 00000000:9C72 00000000:0000 06 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
    expect(parseProcNet(HEADER + timeWait, PROC_NET_TABLES.tcp, "LE").sockets).toEqual([]);
  });

  it("when the text is empty or only the header then there is nothing and nothing malformed", () => {
    expect(parseProcNet("", PROC_NET_TABLES.udp6, "LE")).toEqual({ sockets: [], malformed: 0 });
    expect(parseProcNet(HEADER, PROC_NET_TABLES.udp, "LE")).toEqual({ sockets: [], malformed: 0 });
  });
});

describe("parseSs (the daemon's poll through sock_diag)", () => {
  const ssFixture = readFileSync(fileURLToPath(new URL("../fixtures/ss/ss-listeners.txt", import.meta.url)), "utf8");

  it("when ss lists the fixture's sockets then it finds what /proc/net finds, plus the link-local listener", () => {
    const fromSs = parseSs(ssFixture);
    expect(fromSs.malformed).toBe(0);
    const lines = fromSs.sockets.map((s) => `${s.proto} ${s.address} ${s.port}${s.loopback ? " lo" : ""}`).sort();
    expect(lines).toEqual(
      [
        "udp 127.0.0.1 40060 lo",
        "udp 198.18.0.1 40064",
        "udp 0.0.0.0 51820",
        "udp :: 40061",
        "udp ::1 40062 lo",
        "udp ::ffff:127.0.0.1 40063 lo",
        "tcp 0.0.0.0 40050",
        "tcp 198.18.0.1 40056",
        "tcp 127.0.0.1 40051 lo",
        "tcp ::1 40053 lo",
        "tcp fd18:18::1 40055",
        "tcp :: 40052",
        "tcp fe80::18 40058",
        "tcp ::ffff:198.18.0.1 40057",
        "tcp ::ffff:127.0.0.1 40054 lo",
      ].sort(),
    );
    const procNet = ["tcp", "tcp6", "udp", "udp6"].flatMap((t) => parseProcNet(fixture(t), PROC_NET_TABLES[t as keyof typeof PROC_NET_TABLES], "LE").sockets);
    expect(reachableServices(fromSs.sockets).filter((s) => s.port !== 40058)).toEqual(reachableServices(procNet));
  });

  it("when a socket is bound to the loopback device or listens on any address of either family then it is classified as such", () => {
    const { sockets, malformed } = parseSs("udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:*\nudp UNCONN 0 0 *:123 *:*\ntcp LISTEN 0 4096 [::]%lo:9 [::]:*\n");
    expect(malformed).toBe(0);
    expect(sockets).toEqual([
      { proto: "udp", family: 4, address: "127.0.0.53", port: 53, loopback: true },
      { proto: "udp", family: 6, address: "::", port: 123, loopback: false },
      { proto: "tcp", family: 6, address: "::", port: 9, loopback: true },
    ]);
  });

  it("when a line is not a socket line then it is counted and skipped, never thrown", () => {
    const { sockets, malformed } = parseSs(
      "garbage\ntcp LISTEN 0 1 0.0.0.0:99999 0.0.0.0:*\nraw UNCONN 0 0 0.0.0.0:1 0.0.0.0:*\ntcp LISTEN 0 1 0.0.0.0:22 0.0.0.0:*\n",
    );
    expect(malformed).toBe(3);
    expect(sockets).toEqual([{ proto: "tcp", family: 4, address: "0.0.0.0", port: 22, loopback: false }]);
  });

  it("when this process asks ss for its own namespace then a TCP server it just started is listed", async () => {
    const net = await import("node:net");
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
    try {
      const port = (server.address() as { port: number }).port;
      expect(reachableServices((await ssListeningSocketsReader()()).sockets)).toContainEqual({ proto: "tcp", port });
    } finally {
      server.close();
    }
  });

  it("when ss is not installed then the reader says so once and reads /proc/net instead", async () => {
    const said: string[] = [];
    const read = ssListeningSocketsReader({
      ssPath: "/nonexistent/ss",
      onFallback: (why) => said.push(why),
      fallback: async () => ({ sockets: [], malformed: 7 }),
    });
    expect((await read()).malformed).toBe(7);
    expect((await read()).malformed).toBe(7);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/not found \(install iproute2\)/);
  });
});
