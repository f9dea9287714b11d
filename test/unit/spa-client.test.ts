import { mkdtempSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import type { ClientDeps } from "../../client/knock.js";
import { SpaAcceptor } from "../../server/spa/acceptor.js";
import { runCli, type CliIo } from "../../src/cli-io.js";
import { decodeSecret, defaultProfileFields, formatProfileUri, parseProfileUri } from "../../src/protocol/profile-uri.js";
import { spaPort } from "../../src/protocol/spa/keys.js";
import type { KnockMode } from "../../src/protocol/spa/mode.js";

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
const uriOf = (mode: KnockMode): string =>
  formatProfileUri({ client: "alice", host: "srv.example", open: [22, 443], secret: decodeSecret(SECRET), ...defaultProfileFields([22, 443]), mode });
const T = 56_666_666;
const T_START_MS = T * 30_000;
const LOCAL = "198.18.0.1";

/** The client in memory; its SPA datagrams go to a real acceptor holding the same secret. */
class Harness {
  nowMs = T_START_MS + 1_000;
  readonly datagrams: { port: number; bytes: Buffer }[] = [];
  readonly knocks: number[] = [];
  out: string[] = [];
  err: string[] = [];
  portOpen = false;
  constructor(readonly home: string) {}

  deps(): Partial<ClientDeps> {
    return {
      resolve: async () => ({ address: "198.18.0.2", family: 4 }),
      openSender: async (transport) => ({ transport, knock: async (port) => void this.knocks.push(port), close: () => {} }),
      connect: async (_t, _p, timeoutMs) => {
        if (this.portOpen) return { kind: "open", socket: new Socket() };
        this.nowMs += timeoutMs;
        return { kind: "timeout" };
      },
      sleep: async (ms) => void (this.nowMs += ms),
      sendSpa: async (_target, port, build) => {
        this.datagrams.push({ port, bytes: build(LOCAL) });
        this.portOpen = true;
        return { localAddress: LOCAL };
      },
    };
  }

  async run(...args: string[]): Promise<number> {
    this.out = [];
    this.err = [];
    const io: CliIo = {
      out: (t) => this.out.push(...t.replace(/\n$/, "").split("\n")),
      err: (t) => this.err.push(...t.replace(/\n$/, "").split("\n")),
      env: { TKNOCK_HOME: this.home },
      clock: { nowMs: () => this.nowMs },
      stdin: new PassThrough(),
      stdout: new PassThrough(),
    };
    return runCli(createClientCli(io, this.deps()), args, io);
  }

  /** What a server with this client (allowed nat or not) decides on the last datagram. */
  serverSays(src = LOCAL, allowNat = false): unknown {
    const profile = parseProfileUri(uriOf("spa"));
    const a = new SpaAcceptor([{ name: "alice", profile, open: profile.open, allowNat }], { skewWindows: 1 }, this.nowMs);
    return a.onDatagram(this.datagrams.at(-1)!.bytes, src, this.nowMs);
  }
}

describe("tknock with an SPA profile", () => {
  let dir: string;
  let h: Harness;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-spa-cli-"));
    h = new Harness(join(dir, "home"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when an SPA profile knocks then one datagram goes to this window's SPA port and opens all its ports for this host", async () => {
    expect(await h.run("add", uriOf("spa"), "--name", "srv")).toBe(0);
    expect(await h.run("srv")).toBe(0);
    expect(h.knocks).toEqual([]);
    expect(h.datagrams.map((d) => d.port)).toEqual([spaPort(parseProfileUri(uriOf("spa")), T)]);
    expect(h.serverSays()).toMatchObject({ kind: "open", client: "alice", step: T, address: LOCAL, ports: [22, 443] });
  });

  it("when --open, --allow-ip or --nat are given then the packet asks for exactly that", async () => {
    expect(await h.run("add", uriOf("spa"), "--name", "srv")).toBe(0);
    expect(await h.run("srv", "--open", "443", "--allow-ip", "203.0.113.9")).toBe(0);
    expect(h.serverSays()).toMatchObject({ kind: "open", address: "203.0.113.9", ports: [443] });
    expect(await h.run("srv", "--nat")).toBe(0);
    expect(h.serverSays("203.0.113.77", true)).toMatchObject({ kind: "open", address: "203.0.113.77" });
  });

  it("when --wait is given then it knocks once and waits for the port", async () => {
    expect(await h.run("add", uriOf("spa"), "--name", "srv")).toBe(0);
    expect(await h.run("srv", "--wait", "2")).toBe(0);
    expect(h.datagrams).toHaveLength(1);
  });

  it("when a profile of both modes knocks then it sends its sequence, and with --spa one SPA datagram", async () => {
    expect(await h.run("add", uriOf("both"), "--name", "srv")).toBe(0);
    expect(await h.run("srv")).toBe(0);
    expect(h.knocks).toHaveLength(4);
    expect(h.datagrams).toHaveLength(0);
    expect(await h.run("srv", "--spa")).toBe(0);
    expect(h.datagrams).toHaveLength(1);
  });

  it("when SPA flags are given for a sequence profile, or ports it may not open, then it exits 1 and sends nothing", async () => {
    expect(await h.run("add", uriOf("sequence"), "--name", "seq")).toBe(0);
    expect(await h.run("add", uriOf("spa"), "--name", "srv")).toBe(0);
    expect(await h.run("seq", "--spa")).toBe(1);
    expect(h.err.join("\n")).toMatch(/--mode spa or both/);
    expect(await h.run("srv", "--open", "8080")).toBe(1);
    expect(await h.run("srv", "--nat", "--allow-ip", "198.18.0.9")).toBe(1);
    expect(await h.run("srv", "--allow-ip", "not-an-ip")).toBe(1);
    expect(h.datagrams).toEqual([]);
    expect(h.knocks).toEqual([]);
  });

  it("when `sequence --json` is asked for an SPA profile then it shows the SPA port", async () => {
    expect(await h.run("add", uriOf("spa"), "--name", "srv")).toBe(0);
    expect(await h.run("sequence", "srv", "--at", String(T * 30), "--json")).toBe(0);
    expect(JSON.parse(h.out.join(""))).toEqual({ step: T, ports: [spaPort(parseProfileUri(uriOf("spa")), T)], proto: "udp", mode: "spa" });
  });
});
