import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CommandFirewall, type CommandRunner } from "../../server/firewalls/command/command-firewall.js";
import { commandTemplateProblem, expandCommand } from "../../server/firewalls/command/command-template.js";
import { validateGrant } from "../../server/firewalls/validate.js";
import type { Clock, GateSpec } from "../../src/ports.js";
import { rejectionCodeOf } from "../support/error-code.js";

const GATE: GateSpec = { protectedPorts: [22], knockRange: { min: 40000, max: 40100 } };
const OPEN = ["/usr/local/bin/fw", "open", "{ip}", "{port}/{proto}", "for={timeout}s", "{client}"];
const CLOSE = ["/usr/local/bin/fw", "close", "{ip}", "{port}/{proto}"];

describe("command templates", () => {
  it("when a grant is expanded then each value lands inside its own argument, byte for byte", () => {
    const g = validateGrant({ src: "FD18:0018::0:2", port: 22, openSeconds: 30, client: "alice" });
    expect(expandCommand(OPEN, g, "udp")).toEqual(["/usr/local/bin/fw", "open", "fd18:18::2", "22/udp", "for=30s", "alice"]);
    expect(expandCommand(["/bin/x", "{client}"], validateGrant({ src: "198.18.0.1", port: 22, openSeconds: 5 }), "tcp")).toEqual(["/bin/x", "-"]);
  });

  it("when a template is empty, relative, has an unknown placeholder or a placeholder in the program then it is refused", () => {
    expect(commandTemplateProblem(OPEN)).toBeUndefined();
    for (const bad of [[], "fw open", ["fw", "{ip}"], ["/bin/fw", "{addr}"], ["/bin/{ip}"], ["/bin/fw", ""], ["/bin/fw", 3]]) {
      expect(commandTemplateProblem(bad)).toBeDefined();
    }
  });
});

describe("CommandFirewall", () => {
  let dir: string;
  let statePath: string;
  let ran: string[][];
  let failClose: boolean;
  const clock = {
    ms: 1_700_000_000_000,
    nowMs(): number {
      return this.ms;
    },
  } satisfies Clock & { ms: number };
  const errors: string[] = [];
  const log = { info: () => {}, warn: () => {}, error: (_f: Record<string, unknown>, m: string) => void errors.push(m) };
  const run: CommandRunner = async (argv) => {
    ran.push([...argv]);
    if (failClose && argv[1] === "close") throw new Error("fw: refused");
  };
  const make = (): CommandFirewall => new CommandFirewall({ open: OPEN, close: CLOSE, statePath, clock, log, run, sweepMs: 3_600_000 });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-command-"));
    statePath = join(dir, "command-grants.json");
    ran = [];
    failClose = false;
    errors.length = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when a grant opens then the open command runs once per protocol, and when its time is up the close command runs and it is gone", async () => {
    const fw = make();
    await fw.install(GATE);
    await fw.open([{ src: "198.18.0.1", port: 22, openSeconds: 30, client: "alice" }]);
    expect(ran).toEqual([
      ["/usr/local/bin/fw", "open", "198.18.0.1", "22/tcp", "for=30s", "alice"],
      ["/usr/local/bin/fw", "open", "198.18.0.1", "22/udp", "for=30s", "alice"],
    ]);
    expect(await fw.list()).toEqual([{ src: "198.18.0.1", port: 22, openSeconds: 30, client: "alice", expiresInSeconds: 30 }]);
    clock.ms += 29_000;
    await fw.sweep();
    expect(ran).toHaveLength(2);
    clock.ms += 1000;
    await fw.sweep();
    expect(ran.slice(2)).toEqual([
      ["/usr/local/bin/fw", "close", "198.18.0.1", "22/tcp"],
      ["/usr/local/bin/fw", "close", "198.18.0.1", "22/udp"],
    ]);
    expect(await fw.list()).toEqual([]);
    await fw.close();
  });

  it("when a close command fails then the error is logged, the grant stays listed as still open, and the close is retried", async () => {
    const fw = make();
    await fw.install(GATE);
    await fw.open([{ src: "198.18.0.1", port: 22, openSeconds: 5 }]);
    failClose = true;
    clock.ms += 5000;
    await fw.sweep();
    expect(errors).toEqual(["close command failed: the port is still open for this source; retrying"]);
    expect(await fw.list()).toMatchObject([{ src: "198.18.0.1", expiresInSeconds: 0 }]);
    failClose = false;
    clock.ms += 1000;
    await fw.sweep();
    expect(await fw.list()).toEqual([]);
    await fw.close();
  });

  it("when the daemon died during a grant then the next daemon's install closes it, time left or not; a reader (status) sees it meanwhile and closes nothing", async () => {
    const first = make();
    await first.install(GATE);
    await first.open([{ src: "198.18.0.1", port: 22, openSeconds: 600 }]);
    // SIGKILL: no close() runs; the grants file is all that is left.
    const reader = make();
    expect(await reader.list()).toMatchObject([{ src: "198.18.0.1", port: 22 }]);
    await reader.close();
    ran = [];
    const second = make();
    await second.install(GATE);
    expect(ran.map((a) => a[1])).toEqual(["close", "close"]);
    expect(JSON.parse(readFileSync(statePath, "utf8"))).toEqual({ version: 1, grants: [] });
    await second.close();
  });

  it("when the daemon stops normally then its open grants are closed (no timer is left to close them)", async () => {
    const fw = make();
    await fw.install(GATE);
    await fw.open([{ src: "198.18.0.1", port: 22, openSeconds: 600 }]);
    await fw.close();
    expect(ran.slice(2).map((a) => a[1])).toEqual(["close", "close"]);
    expect(await make().list()).toEqual([]);
  });

  it("when the grants file is damaged then install is refused with TKNOCK_FIREWALL instead of guessing what is open", async () => {
    writeFileSync(statePath, "{not json");
    expect(await rejectionCodeOf(make().install(GATE))).toBe("TKNOCK_FIREWALL");
  });

  it("when the open command fails then open is rejected with TKNOCK_FIREWALL and the grant is still closed at its time", async () => {
    const fw = new CommandFirewall({
      open: OPEN,
      close: CLOSE,
      statePath,
      clock,
      log,
      sweepMs: 3_600_000,
      run: async (argv) => {
        ran.push([...argv]);
        if (argv[1] === "open") throw new Error("fw: no such zone");
      },
    });
    await fw.install(GATE);
    expect(await rejectionCodeOf(fw.open([{ src: "198.18.0.1", port: 22, openSeconds: 5 }]))).toBe("TKNOCK_FIREWALL");
    clock.ms += 5000;
    await fw.sweep();
    expect(ran.filter((a) => a[1] === "close")).toHaveLength(2);
    await fw.close();
  });
});
