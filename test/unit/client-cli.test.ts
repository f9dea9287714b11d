import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import type { ClientDeps } from "../../client/knock.js";
import type { Transport } from "../../client/senders/sender.js";
import { runCli, type CliIo } from "../../src/cli-io.js";
import { ExitCode, TknockError } from "../../src/errors.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { decodeSecret, defaultProfileFields, formatProfileUri, parseProfileUri } from "../../src/protocol/profile-uri.js";

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
const URI = formatProfileUri({ client: "alice", host: "srv.example", open: [22], secret: decodeSecret(SECRET), ...defaultProfileFields([22]) });
const UDP_URI = formatProfileUri({
  client: "alice",
  host: "udp.example",
  open: [22],
  secret: decodeSecret(SECRET),
  ...defaultProfileFields([22]),
  proto: "udp",
});
const PROFILE = parseProfileUri(URI);
const T = 56_666_666;
const T_START_MS = T * 30_000;

type Sent = { transport: Transport; address: string; port: number; stepOnDisk: number | undefined };

/** The client in memory: fake clock (sleep advances it), fake network, a real store in a temp folder. */
class Harness {
  nowMs = T_START_MS + 1_000;
  readonly sent: Sent[] = [];
  readonly sleeps: number[] = [];
  readonly commands: string[][] = [];
  commandExit = 0;
  portOpensAfterMs: number | undefined = undefined;
  /** The gate lets this address in from then on but nothing listens on TCP (a UDP service): connects are refused. */
  refusedAfterMs: number | undefined = undefined;
  udpRepliesAfterMs: number | undefined = undefined;
  readonly udpProbes: Buffer[] = [];
  connectError: string | undefined;
  openSenderError: TknockError | undefined;
  stdin = new PassThrough();
  out: string[] = [];
  err: string[] = [];

  /** Runs at every look at the port (e.g. to play another process that knocks meanwhile). */
  onConnect: (() => void) | undefined;

  constructor(readonly home: string) {}

  stepOnDisk(name: string): number | undefined {
    try {
      const file = JSON.parse(readFileSync(join(this.home, "profiles.json"), "utf8")) as { profiles: Record<string, { lastStepUsed?: number }> };
      return file.profiles[name]?.lastStepUsed;
    } catch {
      return undefined;
    }
  }

  deps(): ClientDeps {
    const knockStartMs = this.nowMs;
    return {
      resolve: async (host) => {
        if (host.endsWith(".invalid")) throw new TknockError("TKNOCK_RESOLVE", "cannot resolve", ExitCode.network);
        return { address: host === "srv.example" ? "198.18.0.2" : host, family: 4 };
      },
      openSender: async (transport, target) => {
        if (this.openSenderError) throw this.openSenderError;
        return {
          transport,
          knock: async (port) => {
            this.sent.push({ transport, address: target.address, port, stepOnDisk: this.stepOnDisk("srv") });
          },
          close: () => {},
        };
      },
      connect: async (_target, _port, timeoutMs) => {
        this.onConnect?.();
        if (this.connectError !== undefined) {
          this.nowMs += 1;
          return { kind: "error", code: this.connectError };
        }
        if (this.portOpensAfterMs !== undefined && this.nowMs - knockStartMs >= this.portOpensAfterMs) return { kind: "open", socket: new Socket() };
        if (this.refusedAfterMs !== undefined && this.nowMs - knockStartMs >= this.refusedAfterMs) return { kind: "refused" };
        this.nowMs += timeoutMs;
        return { kind: "timeout" };
      },
      probeUdp: async (_target, _port, payload, timeoutMs) => {
        this.udpProbes.push(payload);
        if (this.udpRepliesAfterMs !== undefined && this.nowMs - knockStartMs >= this.udpRepliesAfterMs) return { kind: "open" };
        this.nowMs += timeoutMs;
        return { kind: "closed" };
      },
      sleep: async (ms) => {
        this.sleeps.push(ms);
        this.nowMs += ms;
      },
      runCommand: async (argv) => {
        this.commands.push([...argv]);
        return this.commandExit;
      },
      sendSpa: () => Promise.reject(new Error("no SPA profile in these tests")),
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
      stdin: this.stdin,
      stdout: new PassThrough(),
    };
    return runCli(createClientCli(io, this.deps()), args, io);
  }
}

describe("tknock client CLI (in memory)", () => {
  let dir: string;
  let h: Harness;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tknock-cli-"));
    h = new Harness(join(dir, "home"));
    expect(await h.run("add", URI, "--name", "srv")).toBe(0);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when knocking then the current step's ports go out in order, after the step was recorded", async () => {
    expect(await h.run("srv")).toBe(0);
    expect(h.sent.map((s) => s.port)).toEqual(deriveSequence(PROFILE, T));
    expect(h.sent.every((s) => s.stepOnDisk === T && s.transport === "tcp" && s.address === "198.18.0.2")).toBe(true);
    expect(h.sleeps).toEqual([]); // back to back by default
  });

  it("when knocking twice in a window then the second uses the next step, and a third waits for the next window", async () => {
    await h.run("srv", "--delay", "10");
    expect(await h.run("srv.example", "--delay", "0")).toBe(0);
    expect(h.sent.slice(4).map((s) => s.port)).toEqual(deriveSequence(PROFILE, T + 1));
    expect(h.sleeps).toEqual([10, 10, 10]);
    const beforeMs = h.nowMs;
    expect(await h.run("srv", "--delay", "0")).toBe(0);
    expect(h.sleeps.slice(3)).toEqual([T_START_MS + 30_000 - beforeMs]); // until the next window begins
    expect(h.err.join("\n")).toMatch(/waiting/);
    expect(h.sent.slice(8).map((s) => s.port)).toEqual(deriveSequence(PROFILE, T + 2));
    expect(h.stepOnDisk("srv")).toBe(T + 2);
  });

  it("when --time-offset -30 is given then the previous window's step is used", async () => {
    expect(await h.run("srv", "--time-offset", "-30")).toBe(0);
    expect(h.sent.map((s) => s.port)).toEqual(deriveSequence(PROFILE, T - 1));
  });

  it("when `tknock knock NAME` names a profile called like a subcommand then it knocks it", async () => {
    expect(await h.run("add", URI, "--name", "list")).toBe(0);
    expect(h.err.join("\n")).toContain("tknock knock list");
    expect(await h.run("knock", "list")).toBe(0);
    expect(h.sent).toHaveLength(4);
  });

  it("when the transport does not fit the profile's protocol then it exits 1 and records no step", async () => {
    expect(await h.run("srv", "--transport", "udp")).toBe(1);
    expect(h.sent).toEqual([]);
    expect(h.stepOnDisk("srv")).toBeUndefined();
    expect(await h.run("add", UDP_URI, "--name", "u")).toBe(0);
    expect(await h.run("u", "--transport", "raw")).toBe(1);
    expect(await h.run("u")).toBe(0);
    expect(h.sent.map((s) => s.transport)).toEqual(["udp", "udp", "udp", "udp"]);
  });

  it("when the raw transport lacks the privilege then it exits 1 and the step stays unused", async () => {
    h.openSenderError = new TknockError("TKNOCK_RAW_PERMISSION", "needs root", ExitCode.usage);
    expect(await h.run("srv", "--transport", "raw")).toBe(1);
    expect(h.err).toHaveLength(1);
    expect(h.stepOnDisk("srv")).toBeUndefined();
  });

  it("when the name cannot be resolved then it exits 2 and records no step", async () => {
    expect(await h.run("add", URI, "--name", "bad", "--addr", "nowhere.invalid")).toBe(0);
    expect(await h.run("bad")).toBe(2);
    expect(h.sent).toEqual([]);
  });

  it("when --wait is given and the port opens then it reports the time and runs the command with its exit code", async () => {
    h.portOpensAfterMs = 600;
    h.commandExit = 42;
    expect(await h.run("srv", "--wait", "--", "ssh", "-p", "22", "me@srv.example")).toBe(42);
    expect(h.err.join("\n")).toMatch(/open after \d+ ms/);
    expect(h.commands).toEqual([["ssh", "-p", "22", "me@srv.example"]]);
  });

  it("when the port never opens then --wait exits 3 and the command does not run", async () => {
    expect(await h.run("srv", "--quiet", "--wait", "2", "--", "ssh", "me@srv.example")).toBe(3);
    expect(h.commands).toEqual([]);
    expect(h.err).toHaveLength(1); // --quiet: the error line only
  });

  it("when the host is unreachable while waiting then it exits 2 (network), not 3", async () => {
    h.connectError = "EHOSTUNREACH";
    expect(await h.run("srv", "--wait", "1")).toBe(2);
  });

  it("when a command follows without --wait then it runs right after the knock and exit 0 passes through", async () => {
    expect(await h.run("srv", "--", "true")).toBe(0);
    expect(h.commands).toEqual([["true"]]);
    expect(h.sent).toHaveLength(4);
  });

  it("when profiles are listed then no secret appears, in text or JSON", async () => {
    expect(await h.run("list")).toBe(0);
    expect(h.out.join("\n")).toContain("srv");
    expect(h.out.join("\n")).not.toContain(SECRET.slice(0, 12));
    expect(await h.run("list", "--json")).toBe(0);
    const rows = JSON.parse(h.out.join("\n")) as Record<string, unknown>[];
    expect(rows.map((r) => r["name"])).toEqual(["srv"]);
    expect(JSON.stringify(rows)).not.toContain(SECRET.slice(0, 12));
  });

  it("when a URI is exported then stdout is exactly the URI and stderr warns about the secret", async () => {
    expect(await h.run("export", "srv")).toBe(0);
    expect(h.out).toEqual([URI]);
    expect(h.err).toHaveLength(1);
  });

  it("when --addr is given at add then export carries it, so the next device knocks the same address", async () => {
    expect(await h.run("add", URI, "--name", "pub", "--addr", "203.0.113.7")).toBe(0);
    expect(await h.run("export", "pub")).toBe(0);
    expect(parseProfileUri(h.out[0] ?? "").addr).toBe("203.0.113.7");
  });

  it("when `add -` is used then the URI is read from stdin", async () => {
    h.stdin.end(`${UDP_URI}\n`);
    expect(await h.run("add", "-", "--name", "fromstdin")).toBe(0);
    expect(await h.run("list", "--json")).toBe(0);
    expect(h.out.join("")).toContain("fromstdin");
  });

  it("when sequence is given a stored profile name then it prints that profile's ports", async () => {
    expect(await h.run("sequence", "srv", "--at", "1700000000", "--json")).toBe(0);
    expect(JSON.parse(h.out.join(""))).toEqual({ step: T, ports: deriveSequence(PROFILE, T), proto: "tcp" });
  });

  const usage: { name: string; args: string[] }[] = [
    { name: "no arguments", args: [] },
    { name: "an unknown profile", args: ["nosuch"] },
    { name: "add without a URI", args: ["add"] },
    { name: "add with a URI and --qr", args: ["add", URI, "--qr", "x.png"] },
    { name: "a duplicate name", args: ["add", URI, "--name", "srv"] },
    { name: "a bad --delay", args: ["srv", "--delay", "soon"] },
    { name: "an unknown --transport", args: ["srv", "--transport", "icmp"] },
    { name: "a bad --wait", args: ["srv", "--wait", "-1"] },
    { name: "a bad proxy port", args: ["proxy", "srv", "99999"] },
    { name: "remove of an unknown name", args: ["remove", "nosuch"] },
    { name: "sequence with a name and --uri", args: ["sequence", "srv", "--uri", URI] },
  ];
  for (const c of usage) {
    it(`when given ${c.name} then it exits 1 and sends nothing`, async () => {
      expect(await h.run(...c.args)).toBe(1);
      expect(h.sent).toEqual([]);
      expect(h.err.length).toBeGreaterThan(0);
    });
  }

  it("when a URI has a bad parameter then add prints one line naming it and never the secret", async () => {
    expect(await h.run("add", URI.replace("knocks=4", "knocks=1"), "--name", "x")).toBe(1);
    expect(h.err).toHaveLength(1);
    expect(h.err[0]).toContain("knocks");
    expect(h.err[0]).not.toContain(SECRET.slice(0, 12));
  });

  it("when --wait finds the port already open then no knock is sent and no step is spent", async () => {
    h.portOpensAfterMs = 0;
    expect(await h.run("srv", "--wait", "2", "--", "true")).toBe(0);
    expect(h.sent).toEqual([]);
    expect(h.stepOnDisk("srv")).toBeUndefined();
    expect(h.commands).toEqual([["true"]]);
    expect(h.err.join("\n")).toMatch(/already open.*no knock sent/);
  });

  it("when a command follows and the port is already open then it runs without a knock", async () => {
    h.portOpensAfterMs = 0;
    expect(await h.run("srv", "--", "ssh", "me@srv")).toBe(0);
    expect(h.sent).toEqual([]);
    expect(h.commands).toEqual([["ssh", "me@srv"]]);
  });

  it("when another tknock knocks between this one's look and its lock then it looks again and sends nothing", async () => {
    let looks = 0;
    h.portOpensAfterMs = 150; // open from the second look on (the first one times out after 150 ms)
    h.onConnect = () => {
      if (looks++ > 0) return;
      // Another process takes the lock, records step T, knocks and releases the lock, all during our first look.
      const path = join(h.home, "profiles.json");
      const file = JSON.parse(readFileSync(path, "utf8")) as { profiles: Record<string, { lastStepUsed?: number }> };
      (file.profiles["srv"] as { lastStepUsed?: number }).lastStepUsed = T;
      writeFileSync(path, JSON.stringify(file));
    };
    expect(await h.run("srv", "--wait", "2")).toBe(0);
    expect(h.sent).toEqual([]);
    expect(h.stepOnDisk("srv")).toBe(T);
    expect(h.err.join("\n")).toMatch(/another tknock knocked.*no knock sent/);
  });

  it("when --probe-timeout 0 is given then --wait knocks without looking first", async () => {
    h.portOpensAfterMs = 0;
    expect(await h.run("srv", "--wait", "2", "--probe-timeout", "0")).toBe(0);
    expect(h.sent).toHaveLength(4);
  });

  it("when this window's steps are used and the port is closed then one line gives the seconds, and --no-wait-window exits 3 at once", async () => {
    await h.run("srv", "--delay", "0");
    await h.run("srv", "--delay", "0");
    const sleepsBefore = h.sleeps.length;
    expect(await h.run("srv", "--no-wait-window", "--wait", "2")).toBe(ExitCode.notOpened);
    expect(h.sleeps.slice(sleepsBefore).filter((ms) => ms > 1000)).toEqual([]);
    expect(h.err).toHaveLength(1);
    expect(h.err[0]).toMatch(new RegExp(`steps ${T} and ${T + 1} .* are used and port 22 is closed: the next window starts in 2\\d\\.\\d s`));
    expect(h.sent).toHaveLength(8);
  });

  it("when a one-off --time-offset sent a step two windows ahead then the next knock without it uses the current step at once", async () => {
    expect(await h.run("srv", "--delay", "0", "--time-offset", "60")).toBe(0);
    expect(h.sent.map((s) => s.port)).toEqual(deriveSequence(PROFILE, T + 2));
    expect(await h.run("srv", "--delay", "0")).toBe(0);
    expect(h.sent.slice(4).map((s) => s.port)).toEqual(deriveSequence(PROFILE, T));
    expect(h.sleeps).toEqual([]);
    // The far step is never sent again, even when its window comes.
    h.nowMs += 60_000;
    expect(await h.run("srv", "--delay", "0")).toBe(0);
    expect(h.sent.slice(8).map((s) => s.port)).toEqual(deriveSequence(PROFILE, T + 3));
  });

  it("when a one-off --time-offset sent the next window's step then a knock without it goes on from there (the server spent the steps below)", async () => {
    expect(await h.run("srv", "--delay", "0", "--time-offset", "30")).toBe(0);
    expect(h.stepOnDisk("srv")).toBe(T + 1);
    h.portOpensAfterMs = 0; // the offset knock opened the port
    expect(await h.run("srv", "--wait", "2")).toBe(0);
    expect(h.sent).toHaveLength(4);
    expect(h.sleeps).toEqual([]);
  });

  it("when a time offset is stored with `set` then every knock uses it, and `list --json` shows it", async () => {
    expect(await h.run("set", "srv.example", "--time-offset", "30")).toBe(0);
    expect(await h.run("srv", "--delay", "0")).toBe(0);
    expect(h.sent.map((s) => s.port)).toEqual(deriveSequence(PROFILE, T + 1));
    expect(await h.run("srv", "--delay", "0")).toBe(0);
    expect(h.sent.slice(4).map((s) => s.port)).toEqual(deriveSequence(PROFILE, T + 2));
    expect(await h.run("list", "--json")).toBe(0);
    expect((JSON.parse(h.out.join("")) as { timeOffsetSeconds: number }[])[0]?.timeOffsetSeconds).toBe(30);
    expect(await h.run("add", URI, "--name", "skewed", "--time-offset", "-30")).toBe(0);
    expect(await h.run("skewed", "--delay", "0")).toBe(0);
    expect(h.sent.slice(8).map((s) => s.port)).toEqual(deriveSequence(PROFILE, T - 1));
  });

  it("when the gate lets the address in but no TCP service answers (a UDP service) then --wait exits 0 with one line saying it cannot be probed", async () => {
    h.refusedAfterMs = 200;
    expect(await h.run("srv", "--wait", "3", "--quiet")).toBe(0);
    expect(h.sent).toHaveLength(4);
    expect(h.err).toHaveLength(1);
    expect(h.err[0]).toMatch(/no TCP service answers.*--probe-udp/);
  });

  it("when --probe-udp HEX is given then the port is checked with that payload, and a reply means open", async () => {
    h.udpRepliesAfterMs = 200;
    expect(await h.run("srv", "--wait", "3", "--probe-udp", "38000000")).toBe(0);
    expect(h.sent).toHaveLength(4);
    expect(h.udpProbes.at(-1)).toEqual(Buffer.from("38000000", "hex"));
    expect(h.err.join("\n")).toMatch(/open after \d+ ms/);
    expect(await h.run("srv", "--probe-udp", "xyz")).toBe(1);
  });

  it("when another tknock holds the profile's knock lock then this one waits, looks at the port again, and sends nothing if it opened", async () => {
    const lock = join(h.home, "srv.knock.lock");
    mkdirSync(lock, { recursive: true });
    setTimeout(() => {
      h.portOpensAfterMs = 0;
      rmSync(lock, { recursive: true, force: true });
    }, 300);
    expect(await h.run("srv", "--wait", "2")).toBe(0);
    expect(h.sent).toEqual([]);
    expect(h.err.join("\n")).toMatch(/another tknock is knocking this profile/);
  });

  it("when a killed tknock left the profile's knock lock behind then it is taken over at once", async () => {
    const lock = join(h.home, "srv.knock.lock");
    mkdirSync(lock, { recursive: true });
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const started = Date.now();
    expect(await h.run("srv", "--delay", "0")).toBe(0);
    expect(h.sent).toHaveLength(4);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("when export --qr runs then the QR is drawn black on white, and --qr-png writes a PNG of mode 600", async () => {
    const png = join(dir, "srv.png");
    expect(await h.run("export", "srv", "--qr", "--qr-png", png)).toBe(0);
    const text = h.out.slice(1).join("\n");
    expect(text).toContain("\x1b[47m"); // white background
    expect(text).toContain("\x1b[30m"); // black foreground
    expect(statSync(png).mode & 0o777).toBe(0o600);
    expect(readFileSync(png).subarray(0, 4)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  });
});
