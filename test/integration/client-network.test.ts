import { randomBytes } from "node:crypto";
/**
 * The built client in a namespace lab: what the server's wire sees for each transport, `--wait`, `-- COMMAND` and
 * `proxy`. The client is compiled into a private folder under dist/ so parallel suites never read half-written files.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { deriveSequence } from "../../src/protocol/derive.js";
import { defaultProfileFields, formatProfileUri, parseProfileUri } from "../../src/protocol/profile-uri.js";
import { Lab, type ExecResult } from "../../lab/lab.js";
import { describeAsRoot } from "../support/root.js";

const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const ECHO_PORT = 2222; // open, an echo server listens
const DROPPED_PORT = 2223; // dropped by the server's firewall: never opens

type Packet = { proto: "tcp" | "udp"; src: string; dstPort: number; flags: string; checksumOk: boolean };

function sh(argv: readonly string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((done) => {
    const [cmd, ...args] = argv;
    execFile(cmd as string, args, { cwd: REPO, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      done({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Parses `tcpdump -r FILE -n -vv` lines: one per packet (with -vv an IPv4 packet spans two lines). */
function parseTcpdump(text: string): Packet[] {
  const packets: Packet[] = [];
  const joined = text.replace(/\n\s+/g, " ");
  for (const line of joined.split("\n")) {
    const m = /(\S+)\.(\d+) > (\S+)\.(\d+): (?:Flags \[([^\]]*)\]|.*?\b(UDP),)/.exec(line);
    if (!m) continue;
    packets.push({
      proto: m[6] === "UDP" ? "udp" : "tcp",
      src: m[1] as string,
      dstPort: Number(m[4]),
      flags: m[5] ?? "",
      checksumOk: !/incorrect/.test(line),
    });
  }
  return packets;
}

describeAsRoot("tknock client on the wire (namespace lab)", () => {
  let lab: Lab;
  let outDir: string;
  let work: string;
  let bin: string;
  let echo: ChildProcess | undefined;
  let server: { ipv4: string; ipv6: string };
  let client: { ipv4: string; ipv6: string };
  let profileCount = 0;
  const keepers: ChildProcess[] = [];

  beforeAll(async () => {
    // Only the client's import graph is compiled, so a sibling's half-edited server file cannot break this suite.
    outDir = join(REPO, "dist", `.client-it-${process.pid}-${Date.now()}`);
    mkdirSync(outDir, { recursive: true });
    const tsconfig = join(outDir, "tsconfig.json");
    writeFileSync(
      tsconfig,
      JSON.stringify({
        extends: join(REPO, "tsconfig.base.json"),
        compilerOptions: { rootDir: REPO, outDir, sourceMap: false },
        files: [join(REPO, "client/bin.ts"), join(REPO, "client/senders/raw-socket.d.ts")],
      }),
    );
    const build = await sh([process.execPath, "node_modules/typescript/bin/tsc", "-p", tsconfig], 90_000);
    bin = join(outDir, "client/bin.js");
    expect(build.stdout + build.stderr).toBe("");
    expect(build.code).toBe(0);
    lab = await Lab.create(["client", "server"]);
    // removeStaleLabs() in a parallel suite deletes any lab namespace without a process in it: keep one in each.
    keepers.push(lab.spawn("client", ["sleep", "3600"]), lab.spawn("server", ["sleep", "3600"]));
    keepers.push(spawn("ip", ["netns", "exec", `tkl-${lab.id}-sw`, "sleep", "3600"], { stdio: "ignore" }));
    server = lab.host("server");
    client = lab.host("client");
    work = mkdtempSync(join(tmpdir(), "tknock-client-it-"));
    // The knock range is dropped, as on a real gate: knocks get no answer, so only our own packets are on the wire.
    const nft = `table inet tknock_client_it {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport { 10000-59999, ${DROPPED_PORT} } drop
    udp dport 10000-59999 drop
  }
}`;
    const r = await lab.exec("server", ["nft", "-f", "-"], { input: nft });
    expect(r.stderr).toBe("");
    echo = lab.spawn("server", [
      process.execPath,
      "-e",
      `require("net").createServer((s) => s.pipe(s)).listen(${ECHO_PORT}, "::", () => console.log("ready"))`,
    ]);
    await new Promise<void>((ready, fail) => {
      echo?.stdout?.once("data", () => ready());
      echo?.once("exit", (code) => fail(new Error(`echo server exited ${code}`)));
    });
  }, 120_000);

  afterAll(async () => {
    echo?.kill("SIGKILL");
    for (const k of keepers) k.kill("SIGKILL");
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  /** A fresh profile (its own secret, so its steps are unused) stored in its own TKNOCK_HOME. */
  function newProfile(opts: { proto?: "tcp" | "udp"; host?: string; open?: number[] } = {}): { home: string; name: string; uri: string } {
    const open = opts.open ?? [ECHO_PORT];
    const uri = formatProfileUri({
      client: "alice",
      host: opts.host ?? server.ipv4,
      open,
      secret: randomBytes(32),
      ...defaultProfileFields(open),
      proto: opts.proto ?? "tcp",
    });
    profileCount += 1;
    return { home: join(work, `home-${profileCount}`), name: `p${profileCount}`, uri };
  }

  function tknock(home: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return lab.exec("client", ["env", `TKNOCK_HOME=${home}`, process.execPath, bin, ...args], {
      timeoutMs: opts.timeoutMs ?? 20_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  }

  async function addProfile(p: { home: string; name: string; uri: string }): Promise<void> {
    const r = await tknock(p.home, ["add", p.uri, "--name", p.name]);
    expect(r.code, r.stderr).toBe(0);
  }

  function expectedPorts(p: { home: string; name: string; uri: string }): number[] {
    const store = JSON.parse(readFileSync(join(p.home, "profiles.json"), "utf8")) as { profiles: Record<string, { lastStepUsed: number }> };
    const step = store.profiles[p.name]?.lastStepUsed;
    expect(step).toBeTypeOf("number");
    return deriveSequence(parseProfileUri(p.uri), step as number);
  }

  /** Captures what reaches the server's interface from the client while fn runs. */
  async function capture(family: 4 | 6, fn: () => Promise<void>): Promise<Packet[]> {
    const file = join(work, `cap-${Date.now()}-${Math.random().toString(16).slice(2)}.pcap`);
    const src = family === 4 ? client.ipv4 : client.ipv6;
    const dump = lab.spawn("server", ["tcpdump", "-i", "eth0", "-n", "-U", "-w", file, `(tcp or udp) and src host ${src}`]);
    await new Promise<void>((ready, fail) => {
      let text = "";
      dump.stderr?.on("data", (d: Buffer) => {
        text += d.toString();
        if (text.includes("listening on")) ready();
      });
      dump.once("exit", (code) => fail(new Error(`tcpdump exited ${code}: ${text}`)));
    });
    try {
      await fn();
    } finally {
      dump.kill("SIGINT");
      await new Promise<void>((r) => (dump.exitCode !== null ? r() : dump.once("exit", () => r())));
    }
    const read = await sh(["tcpdump", "-r", file, "-n", "-vv"], 10_000);
    return parseTcpdump(read.stdout);
  }

  const cases: { name: string; family: 4 | 6; proto: "tcp" | "udp"; transport: "tcp" | "udp" | "raw" }[] = [
    { name: "tcp over IPv4", family: 4, proto: "tcp", transport: "tcp" },
    { name: "udp over IPv4", family: 4, proto: "udp", transport: "udp" },
    { name: "raw over IPv4", family: 4, proto: "tcp", transport: "raw" },
    { name: "tcp over IPv6", family: 6, proto: "tcp", transport: "tcp" },
    { name: "raw over IPv6", family: 6, proto: "tcp", transport: "raw" },
  ];
  for (const c of cases) {
    it(`when knocking with ${c.name} then the server sees exactly one packet per knock, to the derived ports, in order`, async () => {
      const p = newProfile({ proto: c.proto, host: c.family === 4 ? server.ipv4 : server.ipv6 });
      await addProfile(p);
      const packets = await capture(c.family, async () => {
        // The command keeps tknock alive past the 1 s initial RTO: an aborted connect must not be retransmitted.
        // --probe-timeout 0: knock although the port answers (it is not gated here).
        const r = await tknock(p.home, [p.name, "--transport", c.transport, "--probe-timeout", "0", "--", "sleep", "1.2"]);
        expect(r.code, r.stderr).toBe(0);
      });
      const ports = expectedPorts(p);
      expect(packets.map((k) => k.dstPort)).toEqual(ports);
      for (const k of packets) {
        expect(k.src).toBe(c.family === 4 ? client.ipv4 : client.ipv6);
        expect(k.proto).toBe(c.proto);
        if (c.proto === "tcp") expect(k.flags).toBe("S");
        // Kernel-built packets may carry offloaded (unfinished) checksums; ours must be right.
        if (c.transport === "raw") expect(k.checksumOk).toBe(true);
      }
    });
  }

  it("when a udp transport is asked for a tcp profile then it exits 1 and sends nothing", async () => {
    const p = newProfile();
    await addProfile(p);
    const packets = await capture(4, async () => {
      const r = await tknock(p.home, [p.name, "--transport", "udp"]);
      expect(r.code).toBe(1);
    });
    expect(packets).toEqual([]);
  });

  it("when the raw transport runs without CAP_NET_RAW then it exits 1, sends nothing and leaves the step unused", async () => {
    const p = newProfile();
    await addProfile(p);
    const packets = await capture(4, async () => {
      const r = await lab.exec("client", [
        "env",
        `TKNOCK_HOME=${p.home}`,
        "setpriv",
        "--bounding-set",
        "-net_raw",
        process.execPath,
        bin,
        p.name,
        "--transport",
        "raw",
      ]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/sudo/);
      expect(r.stderr).not.toMatch(/setcap/);
    });
    expect(packets).toEqual([]);
    const store = JSON.parse(readFileSync(join(p.home, "profiles.json"), "utf8")) as { profiles: Record<string, { lastStepUsed?: number }> };
    expect(store.profiles[p.name]?.lastStepUsed).toBeUndefined();
  });

  it("when the open port already accepts connections then --wait sends no knock and the command runs with its exit code", async () => {
    const p = newProfile({ open: [ECHO_PORT] });
    await addProfile(p);
    const packets = await capture(4, async () => {
      const r = await tknock(p.home, [p.name, "--wait", "3", "--", "sh", "-c", "exit 7"]);
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).toMatch(/already open.*no knock sent/);
    });
    expect(packets.filter((k) => k.dstPort >= 10000)).toEqual([]);
  });

  it("when the open port stays dropped then --wait gives up with exit code 3 and runs no command", async () => {
    const p = newProfile({ open: [DROPPED_PORT] });
    await addProfile(p);
    const marker = join(p.home, "ran");
    const r = await tknock(p.home, [p.name, "--wait", "1", "--", "touch", marker]);
    expect(r.code).toBe(3);
    expect(() => readFileSync(marker)).toThrow();
  });

  it("when proxying to an echo server then the bytes of stdin come back on stdout, and nothing else", async () => {
    const p = newProfile({ open: [ECHO_PORT] });
    await addProfile(p);
    // Large enough to take many chunks each way, so back-pressure and the half-close are exercised.
    const payload = `hello through the knock\n${"0123456789abcdef".repeat(16_384)}\nlast line\n`;
    const r = await tknock(p.home, ["proxy", server.ipv4, String(ECHO_PORT), "--wait", "3"], { input: payload });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBe(payload.length);
    expect(r.stdout === payload).toBe(true);
  });

  it("when proxying to a port that never opens then it exits 3 with nothing on stdout", async () => {
    const p = newProfile({ open: [DROPPED_PORT] });
    await addProfile(p);
    const r = await tknock(p.home, ["proxy", p.name, String(DROPPED_PORT), "--wait", "1"], { input: "x" });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toBe("");
  });
});
