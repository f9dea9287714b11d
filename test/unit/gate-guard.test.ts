/**
 * The gate guard with the in-memory firewall and a fake clock: what it finds, what it puts back, what it logs.
 */
import { describe, expect, it } from "vitest";
import { MemoryFirewall } from "../../server/firewalls/memory/memory-firewall.js";
import { GateGuard, type GuardLog } from "../../server/gate-guard.js";
import { TknockError } from "../../src/errors.js";
import type { Clock, GateSpec } from "../../src/ports.js";

const GATE: GateSpec = { protectedPorts: [2222], knockRange: { min: 40000, max: 40100 } };
const ALICE = "198.18.0.1";
const BOB = "198.18.0.4";
const OTHER = "198.18.0.3";

class FakeClock implements Clock {
  constructor(public ms: number) {}
  nowMs(): number {
    return this.ms;
  }
}

type Line = { level: "info" | "warn" | "error"; msg: string; fields: Record<string, unknown> };

function recorder(): { log: GuardLog; lines: Line[]; errors: () => Line[] } {
  const lines: Line[] = [];
  const at = (level: Line["level"]) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, msg, fields });
  return { log: { info: at("info"), warn: at("warn"), error: at("error") }, lines, errors: () => lines.filter((l) => l.level === "error") };
}

async function setup(gate: () => GateSpec = () => GATE): Promise<{ clock: FakeClock; fw: MemoryFirewall; guard: GateGuard; rec: ReturnType<typeof recorder> }> {
  const clock = new FakeClock(1_700_000_000_000);
  const fw = new MemoryFirewall(clock);
  const rec = recorder();
  const guard = new GateGuard({ firewall: fw, clock, log: rec.log, gate });
  await fw.install(gate());
  guard.markInstalled();
  return { clock, fw, guard, rec };
}

describe("gate guard", () => {
  it("when the gate is intact then a check changes nothing and logs nothing", async () => {
    const { fw, guard, rec } = await setup();
    await guard.verify("periodic check");
    expect(rec.lines).toEqual([]);
    expect(guard.health()).toMatchObject({ present: true, repairs: 0 });
    expect(fw.opened).toEqual([]);
  });

  it("when the ruleset is flushed then the next check re-installs the gate and the open grants with their remaining time, logged as an error", async () => {
    const { clock, fw, guard, rec } = await setup();
    const grants = [{ src: ALICE, port: 2222, openSeconds: 30 }];
    guard.track(grants, clock.ms);
    await fw.open(grants);
    guard.track([{ src: BOB, port: 2222, openSeconds: 5 }], clock.ms);
    await fw.open([{ src: BOB, port: 2222, openSeconds: 5 }]);
    clock.ms += 10_500; // Bob's grant is over, Alice has 19.5 s left

    fw.simulateOutsideChange("flush");
    expect(fw.isAllowed(OTHER, 2222)).toBe(true); // what the issue saw: open to everyone
    await guard.verify("periodic check");

    expect(fw.isAllowed(OTHER, 2222)).toBe(false);
    expect(fw.isAllowed(OTHER, 40050)).toBe(false);
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(fw.isAllowed(BOB, 2222)).toBe(false);
    expect(fw.isAllowed(ALICE, 2222, clock.ms + 19_400)).toBe(true);
    expect(fw.isAllowed(ALICE, 2222, clock.ms + 20_001)).toBe(false);
    expect(fw.opened.at(-1)).toEqual({ src: ALICE, port: 2222, openSeconds: 20 });
    const [error] = rec.errors();
    expect(error?.fields).toMatchObject({ problem: "table missing", detectedBy: "periodic check", grantsRestored: 1 });
    expect(error?.msg).toContain("table missing");
    expect(guard.health()).toEqual({ present: true, since: clock.ms, repairs: 1, lastProblem: "table missing" });
  });

  it("when the gate's rules are changed then it is re-installed and the problem is logged", async () => {
    const { fw, guard, rec } = await setup();
    fw.simulateOutsideChange("alter");
    await guard.verify("periodic check");
    expect(await fw.check(GATE)).toBeUndefined();
    expect(rec.errors().map((l) => l.fields["problem"])).toEqual(["rules differ"]);
  });

  it("when the firewall reports a change then the guard checks at once, without waiting for a tick", async () => {
    const { fw, guard, rec } = await setup();
    const stop = new AbortController();
    guard.start(stop.signal);
    try {
      fw.simulateOutsideChange("flush");
      await guard.idle();
      expect(await fw.check(GATE)).toBeUndefined();
      expect(rec.errors()[0]?.fields["detectedBy"]).toBe("firewall event: flush");
    } finally {
      stop.abort();
    }
  });

  it("when re-installing fails then the gate is reported missing, the error is logged once a minute at most, and a later tick repairs it", async () => {
    const { clock, fw, guard, rec } = await setup();
    fw.simulateOutsideChange("flush");
    fw.failWith(new TknockError("TKNOCK_FIREWALL", "nft: Operation not permitted", 1));
    for (let i = 0; i < 30; i++) {
      await guard.verify("periodic check");
      clock.ms += 1000;
    }
    expect(guard.health()).toMatchObject({ present: false, repairs: 0, lastProblem: "table missing" });
    expect(rec.errors()).toHaveLength(1);
    expect(rec.errors()[0]?.msg).toContain("re-installing it failed");
    clock.ms += 31_000;
    await guard.verify("periodic check");
    expect(rec.errors()).toHaveLength(2);
    expect(rec.errors()[1]?.fields["failedAttempts"]).toBe(31);

    fw.failWith(undefined);
    await guard.verify("periodic check");
    expect(fw.isAllowed(OTHER, 2222)).toBe(false);
    expect(guard.health()).toMatchObject({ present: true, repairs: 1 });
  });

  it("when several checks are asked for during a repair then they run one after another, and the gate is installed once", async () => {
    const { fw, guard, rec } = await setup();
    fw.simulateOutsideChange("flush");
    await Promise.all([guard.verify("a"), guard.verify("b"), guard.verify("c")]);
    expect(rec.errors()).toHaveLength(1);
    expect(guard.health().repairs).toBe(1);
  });

  it("when the config's gate changes then update() installs it without logging a repair", async () => {
    let gate = GATE;
    const { fw, guard, rec } = await setup(() => gate);
    gate = { ...GATE, protectedPorts: [2222, 22] };
    await guard.update("protected ports changed");
    expect(fw.installed?.protectedPorts).toEqual([22, 2222]);
    expect(rec.errors()).toEqual([]);
  });

  it("when grants were already open at start then a flush restores them too", async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const fw = new MemoryFirewall(clock);
    await fw.install(GATE);
    await fw.open([{ src: ALICE, port: 2222, openSeconds: 60 }]);
    const guard = new GateGuard({ firewall: fw, clock, log: recorder().log, gate: () => GATE });
    await guard.adoptExisting();
    fw.simulateOutsideChange("flush");
    await guard.verify("periodic check");
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
  });
});

describe("gate guard: heartbeats between full checks", () => {
  async function ticking(beat: () => Promise<boolean>): Promise<{ checks: () => number; clock: FakeClock; stop: () => void; guard: GateGuard }> {
    const clock = new FakeClock(1_700_000_000_000);
    const fw = new MemoryFirewall(clock);
    let checks = 0;
    const check = fw.check.bind(fw);
    fw.check = (gate) => {
      checks++;
      return check(gate);
    };
    Object.assign(fw, { heartbeat: beat });
    const guard = new GateGuard({ firewall: fw, clock, log: recorder().log, gate: () => GATE, tickMs: 10, fullCheckEveryMs: 10_000 });
    await fw.install(GATE);
    guard.markInstalled();
    const ac = new AbortController();
    guard.start(ac.signal);
    return { checks: () => checks, clock, stop: () => ac.abort(), guard };
  }
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it("when the firewall's watcher echoes every heartbeat then the table is listed once, and again only after fullCheckEveryMs", async () => {
    const t = await ticking(async () => true);
    try {
      await sleep(150);
      expect(t.checks()).toBe(1);
      expect(t.guard.heartbeatCount).toBeGreaterThan(3);
      t.clock.ms += 10_000;
      await sleep(60);
      expect(t.checks()).toBe(2);
    } finally {
      t.stop();
    }
  });

  it("when a heartbeat is not echoed (the watcher died or stalled) then the same tick checks the table in full", async () => {
    let echo = true;
    const t = await ticking(async () => echo);
    try {
      await sleep(60);
      const before = t.checks();
      echo = false;
      await sleep(100);
      expect(t.checks()).toBeGreaterThan(before + 3);
    } finally {
      t.stop();
    }
  });
});
