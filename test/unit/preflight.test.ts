/**
 * The start-up checks of `tknock-server run`, each against real files and processes in a temp directory: fake
 * /proc/self/status and /sys/class/net, and stand-ins for tcpdump and nft (nothing here talks to the host's
 * firewall: the "nft" that succeeds is /bin/true).
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CAP, checkCapabilities, checkInterface, checkStateDirWritable, parseCapEff, preflightRun, setuidWarning } from "../../server/preflight.js";
import { defaultServerConfig, type ServerConfig } from "../../server/config/schema.js";

const bit = (cap: number): bigint => 1n << BigInt(cap);
/** What root has under the systemd unit: its bounding set. */
const UNIT_CAPS = bit(CAP.netAdmin) | bit(CAP.netRaw) | bit(CAP.setuid) | bit(CAP.setgid);
const ROOT_CAPS = 0x000001ffffffffffn;

function procStatus(capEff: bigint): string {
  return `Name:\tnode\nUmask:\t0022\nState:\tS (sleeping)\nCapInh:\t0000000000000000\nCapPrm:\t${capEff.toString(16).padStart(16, "0")}\nCapEff:\t${capEff.toString(16).padStart(16, "0")}\nCapBnd:\t000001ffffffffff\n`;
}

describe("start-up checks", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-preflight-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe("rights", () => {
    it("when /proc says CapEff then the mask is read as hex", () => {
      expect(parseCapEff(procStatus(UNIT_CAPS))).toBe(UNIT_CAPS);
      expect(parseCapEff("Name:\tx\n")).toBeUndefined();
    });

    it("when the process has CAP_NET_ADMIN and CAP_NET_RAW, as root or not, then it may run", () => {
      expect(() => checkCapabilities(ROOT_CAPS, 0)).not.toThrow();
      expect(() => checkCapabilities(bit(CAP.netAdmin) | bit(CAP.netRaw), 1000)).not.toThrow();
      // The log listener captures nothing: CAP_NET_ADMIN alone will do.
      expect(() => checkCapabilities(bit(CAP.netAdmin), 1000, false)).not.toThrow();
      expect(() => checkCapabilities(bit(CAP.netAdmin), 1000, true)).toThrow(expect.objectContaining({ code: "TKNOCK_PERMISSION" }));
    });

    it("when a capability is missing, even as uid 0 in a container, then it is TKNOCK_PERMISSION saying run as root or with sudo", () => {
      for (const [mask, uid] of [
        [0n, 1000],
        [bit(CAP.netAdmin), 1000],
        [bit(CAP.netRaw), 0],
        [0n, 0],
      ] as const) {
        expect(() => checkCapabilities(mask, uid)).toThrow(
          expect.objectContaining({ code: "TKNOCK_PERMISSION", message: expect.stringContaining("run as root or with sudo") }),
        );
      }
    });

    it("when /proc cannot tell then root may run and others may not", () => {
      expect(() => checkCapabilities(undefined, 0)).not.toThrow();
      expect(() => checkCapabilities(undefined, 1000)).toThrow(expect.objectContaining({ code: "TKNOCK_PERMISSION" }));
    });

    it("when root lacks CAP_SETUID/CAP_SETGID then a warning says tcpdump may not drop privileges; with the unit's set there is none", () => {
      expect(setuidWarning(bit(CAP.netAdmin) | bit(CAP.netRaw), 0)).toMatch(/CAP_SETUID/);
      expect(setuidWarning(UNIT_CAPS, 0)).toBeUndefined();
      expect(setuidWarning(bit(CAP.netAdmin) | bit(CAP.netRaw), 1000)).toBeUndefined();
    });
  });

  describe("state directory", () => {
    it("when it is writable then the check passes and leaves nothing behind", () => {
      checkStateDirWritable(dir);
      expect(readdirSync(dir)).toEqual([]);
    });

    it("when it does not exist then TKNOCK_STATE_DIR says how to create it", () => {
      const missing = join(dir, "nope");
      expect(() => checkStateDirWritable(missing)).toThrow(
        expect.objectContaining({ code: "TKNOCK_STATE_DIR", message: expect.stringContaining(`mkdir -m 700 ${missing}`) }),
      );
    });

    it("when it is a file then TKNOCK_STATE_DIR says it is not a directory", () => {
      const file = join(dir, "file");
      writeFileSync(file, "");
      expect(() => checkStateDirWritable(file)).toThrow(
        expect.objectContaining({ code: "TKNOCK_STATE_DIR", message: expect.stringContaining("not a directory") }),
      );
    });
  });

  describe("interface", () => {
    let sys: string;
    beforeEach(() => {
      sys = join(dir, "sys-class-net");
      mkdirSync(join(sys, "eth0"), { recursive: true });
      mkdirSync(join(sys, "lo"));
    });

    it('when the interface exists, or is "any", then the check passes', () => {
      expect(() => checkInterface("eth0", { sysClassNet: sys })).not.toThrow();
      expect(() => checkInterface("any", { sysClassNet: sys })).not.toThrow();
    });

    it("when it does not exist then TKNOCK_NO_INTERFACE names it, where to set it and how to list interfaces", () => {
      expect(() => checkInterface("eth9", { sysClassNet: sys })).toThrow(
        expect.objectContaining({
          code: "TKNOCK_NO_INTERFACE",
          message: 'interface eth9 does not exist: set interface in server.json (ip -br link lists them, or use "any")',
        }),
      );
    });

    it("when the name is a path component such as .. then it is not an interface", () => {
      expect(() => checkInterface("..", { sysClassNet: sys })).toThrow(expect.objectContaining({ code: "TKNOCK_NO_INTERFACE" }));
    });
  });

  describe("preflightRun", () => {
    let config: ServerConfig;
    let sys: string;
    let procPath: string;

    beforeEach(() => {
      sys = join(dir, "sys");
      mkdirSync(join(sys, "eth0"), { recursive: true });
      procPath = join(dir, "status");
      writeFileSync(procPath, procStatus(UNIT_CAPS));
      const stateDir = join(dir, "state");
      mkdirSync(stateDir);
      const base = defaultServerConfig({ clientsFile: join(dir, "clients.json"), stateDir });
      // /bin/true answers `--version` and `list tables` with exit 0: a stand-in that touches nothing.
      config = { ...base, interface: "eth0", tcpdump: { ...base.tcpdump, path: "/bin/true" }, nftables: { ...base.nftables, nftPath: "/bin/true" } };
    });

    const run = (c: ServerConfig, caps = procPath) => preflightRun(c, { sysClassNet: sys, procStatusPath: caps, uid: 0 });

    it("when everything is in place then it passes without warnings", async () => {
      await expect(run(config)).resolves.toEqual({ warnings: [] });
    });

    it("when tcpdump is missing then it fails with TKNOCK_TCPDUMP_MISSING naming apt-get install tcpdump, within 2 s", async () => {
      const t0 = Date.now();
      const err = await run({ ...config, tcpdump: { ...config.tcpdump, path: join(dir, "no-tcpdump") } }).catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(err).toMatchObject({ code: "TKNOCK_TCPDUMP_MISSING", message: expect.stringContaining("apt-get install tcpdump") });
    });

    it("when tcpdump is not executable then the message says chmod", async () => {
      const path = join(dir, "tcpdump");
      writeFileSync(path, "#!/bin/sh\n");
      chmodSync(path, 0o644);
      await expect(run({ ...config, tcpdump: { ...config.tcpdump, path } })).rejects.toMatchObject({
        code: "TKNOCK_TCPDUMP_MISSING",
        message: expect.stringContaining("chmod"),
      });
    });

    it("when nft is missing then it fails naming apt-get install nftables", async () => {
      await expect(run({ ...config, nftables: { ...config.nftables, nftPath: join(dir, "no-nft") } })).rejects.toMatchObject({
        code: "TKNOCK_FIREWALL",
        message: expect.stringContaining("apt-get install nftables"),
      });
    });

    describe("listener log", () => {
      const noTcpdump = (c: ServerConfig): ServerConfig => ({ ...c, listener: "log", tcpdump: { ...c.tcpdump, path: join(dir, "no-tcpdump") } });
      const runLog = (c: ServerConfig, opts: { journalctlPath?: string; kmsgPath?: string } = {}) =>
        preflightRun(noTcpdump(c), { sysClassNet: sys, procStatusPath: procPath, uid: 0, ...opts });

      it("when the source is a file in an existing folder then it passes without tcpdump", async () => {
        await expect(runLog({ ...config, logSource: `file:${join(dir, "kern.log")}` })).resolves.toEqual({ warnings: [] });
      });

      it("when the followed file's folder does not exist then TKNOCK_LOG_SOURCE names the folder", async () => {
        const err = await runLog({ ...config, logSource: `file:${join(dir, "nope", "kern.log")}` }).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "TKNOCK_LOG_SOURCE", exitCode: 1, message: expect.stringContaining(join(dir, "nope")) });
      });

      it("when journalctl is missing then TKNOCK_LOG_SOURCE names journalctl, within 2 s", async () => {
        const t0 = Date.now();
        const err = await runLog({ ...config, logSource: "journald" }, { journalctlPath: join(dir, "no-journalctl") }).catch((e: unknown) => e);
        expect(Date.now() - t0).toBeLessThan(2000);
        expect(err).toMatchObject({ code: "TKNOCK_LOG_SOURCE", exitCode: 1, message: expect.stringContaining("journalctl not found") });
      });

      it("when journalctl answers then journald passes", async () => {
        await expect(runLog({ ...config, logSource: "journald" }, { journalctlPath: "/bin/true" })).resolves.toEqual({ warnings: [] });
      });

      it("when the kmsg device cannot be opened then TKNOCK_LOG_SOURCE names it", async () => {
        await expect(runLog({ ...config, logSource: "kmsg" }, { kmsgPath: join(dir, "no-kmsg") })).rejects.toMatchObject({
          code: "TKNOCK_LOG_SOURCE",
          message: expect.stringContaining("no-kmsg"),
        });
      });
    });

    describe("listener nflog", () => {
      it("when the interface is missing then it still passes: nflog:N is read, no interface", async () => {
        await expect(run({ ...config, listener: "nflog", interface: "eth9" })).resolves.toEqual({ warnings: [] });
      });

      it("when only CAP_NET_ADMIN is held then it passes (no capture socket), warning that tcpdump cannot drop to its user", async () => {
        writeFileSync(procPath, procStatus(bit(CAP.netAdmin)));
        const r = await run({ ...config, listener: "nflog" });
        expect(r.warnings).toEqual([expect.stringContaining("CAP_SETUID")]);
      });

      it("when tcpdump is missing then it fails with TKNOCK_TCPDUMP_MISSING naming apt-get install tcpdump", async () => {
        await expect(run({ ...config, listener: "nflog", tcpdump: { ...config.tcpdump, path: join(dir, "no-tcpdump") } })).rejects.toMatchObject({
          code: "TKNOCK_TCPDUMP_MISSING",
          message: expect.stringContaining("apt-get install tcpdump"),
        });
      });
    });

    it("when the interface is missing then it fails with TKNOCK_NO_INTERFACE", async () => {
      await expect(run({ ...config, interface: "eth9" })).rejects.toMatchObject({ code: "TKNOCK_NO_INTERFACE" });
    });

    it("when rights and tcpdump are both missing then the rights are named first: they are the cause of most other failures", async () => {
      writeFileSync(procPath, procStatus(0n));
      await expect(run({ ...config, tcpdump: { ...config.tcpdump, path: join(dir, "no-tcpdump") } })).rejects.toMatchObject({ code: "TKNOCK_PERMISSION" });
    });

    it("when root runs without CAP_SETUID then it passes with one warning", async () => {
      writeFileSync(procPath, procStatus(bit(CAP.netAdmin) | bit(CAP.netRaw)));
      const r = await run(config);
      expect(r.warnings).toHaveLength(1);
    });
  });
});
