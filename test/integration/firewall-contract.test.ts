/**
 * One contract that every Firewall passes (like otplib's one TOTP suite per crypto plugin): the in-memory one
 * with a fake clock, and nftables against the real kernel inside a lab namespace. Then nftables alone: other
 * tables, restarts, and real TCP traffic between lab hosts.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryFirewall } from "../../server/firewalls/memory/memory-firewall.js";
import { NftablesFirewall } from "../../server/firewalls/nftables/nftables-firewall.js";
import { CommandFirewall } from "../../server/firewalls/command/command-firewall.js";
import { NoneFirewall } from "../../server/firewalls/none/none-firewall.js";
import { IptablesFirewall } from "../../server/firewalls/iptables/iptables-firewall.js";
import type { Clock, Firewall, GateProblem, GateSpec, Grant } from "../../src/ports.js";
import { Lab, removeStaleLabs } from "../../lab/lab.js";
import { describeAsRoot } from "../support/root.js";
import { rejectionCodeOf } from "../support/error-code.js";
import { sleep } from "../support/wait.js";

const GATE: GateSpec = { protectedPorts: [2222], knockRange: { min: 40000, max: 40100 } };
const CLIENT4 = "198.18.0.2";
const CLIENT6 = "fd18:18::2";

type Harness = {
  readonly firewall: Firewall;
  /** Lets time pass: a clock step for the memory firewall, a real (bounded) wait for a kernel. */
  elapse(seconds: number): Promise<void>;
  /** What a firewall reload or an operator does behind tknock's back. */
  outside?(change: OutsideChange): Promise<void>;
  /** The ports in the gate's watch set, read from the firewall itself (sorted); absent: the firewall has none. */
  watched?(): Promise<number[]>;
  /**
   * What check() reports after each outside change; absent: the firewall owns no gate it could check (command,
   * none), so there is nothing to heal.
   */
  outsideKinds?: Record<OutsideChange, GateProblem["kind"]>;
};

const NFT_OUTSIDE_KINDS: Record<OutsideChange, GateProblem["kind"]> = { flush: "table-missing", "delete-table": "table-missing", "add-rule": "rules-differ" };

/** `nft flush ruleset`, `nft delete table inet tknock`, and a rule that accepts the protected port slipped in. */
type OutsideChange = "flush" | "delete-table" | "add-rule";

function find(grants: readonly Grant[], src: string, port: number): Grant | undefined {
  return grants.find((g) => g.src === src && g.port === port);
}

/** it() when the condition holds; otherwise no test at all (not a skipped one). */
const itIf = (condition: boolean): typeof it => (condition ? it : ((() => undefined) as unknown as typeof it));

/** What a firewall can do beyond the common contract: own a gate it checks and heals, and keep a watch set. */
type Capabilities = { readonly heals: boolean; readonly watchSet: boolean };

function firewallContract(name: string, caps: Capabilities, makeHarness: () => Promise<Harness>): void {
  describe(`Firewall contract: ${name}`, () => {
    let h: Harness;

    beforeAll(async () => {
      h = await makeHarness();
    });

    beforeEach(async () => {
      await h.firewall.remove();
      await h.firewall.install(GATE);
    });

    afterAll(async () => {
      await h?.firewall.remove();
      await h?.firewall.close();
    });

    it("when a grant is opened then it is listed with its timeout and the seconds left", async () => {
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      const grant = find(await h.firewall.list(), CLIENT4, 2222);
      expect(grant?.openSeconds).toBe(30);
      expect(grant?.expiresInSeconds).toBeGreaterThanOrEqual(25);
      expect(grant?.expiresInSeconds).toBeLessThanOrEqual(30);
    });

    it("when an IPv6 grant is opened in a non-canonical spelling then it is listed in canonical form", async () => {
      await h.firewall.open([{ src: "FD18:0018::0:2", port: 2222, openSeconds: 30 }]);
      expect(find(await h.firewall.list(), CLIENT6, 2222)?.openSeconds).toBe(30);
    });

    it("when the gate is installed again, also with other ports, then it is idempotent and keeps the grants", async () => {
      await h.firewall.open([
        { src: CLIENT4, port: 2222, openSeconds: 30 },
        { src: CLIENT6, port: 2222, openSeconds: 30 },
      ]);
      await h.firewall.install(GATE);
      await h.firewall.install({ protectedPorts: [2222, 2223], knockRange: { min: 41000, max: 41010 } });
      await h.firewall.install(GATE);
      const grants = await h.firewall.list();
      expect(grants).toHaveLength(2);
      expect(find(grants, CLIENT4, 2222)).toBeDefined();
      expect(find(grants, CLIENT6, 2222)).toBeDefined();
    });

    it("when the gate is installed with exempt services, then without, then grants stay; a bad service is refused with TKNOCK_INVALID_GATE", async () => {
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      await h.firewall.install({
        ...GATE,
        exemptServices: [
          { proto: "udp", port: 40060 },
          { proto: "tcp", port: 40050 },
        ],
      });
      await h.firewall.install({ ...GATE, exemptServices: [] });
      for (const bad of [[{ proto: "icmp", port: 40050 }], [{ proto: "tcp", port: 0 }], [{ proto: "tcp", port: "40050 }; flush ruleset" }]]) {
        expect(await rejectionCodeOf(h.firewall.install({ ...GATE, exemptServices: bad as unknown as [] }))).toBe("TKNOCK_INVALID_GATE");
      }
      expect(find(await h.firewall.list(), CLIENT4, 2222)).toBeDefined();
    });

    it("when a grant's time is up then it disappears by itself", async () => {
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 2 }]);
      expect(find(await h.firewall.list(), CLIENT4, 2222)).toBeDefined();
      await h.elapse(3);
      expect(find(await h.firewall.list(), CLIENT4, 2222)).toBeUndefined();
    });

    it("when a grant is opened again then its timeout restarts, longer or shorter", async () => {
      await h.firewall.open([
        { src: CLIENT4, port: 2222, openSeconds: 2 },
        { src: CLIENT6, port: 2222, openSeconds: 60 },
      ]);
      await h.firewall.open([
        { src: CLIENT4, port: 2222, openSeconds: 60 },
        { src: CLIENT6, port: 2222, openSeconds: 2 },
      ]);
      const grants = await h.firewall.list();
      expect(find(grants, CLIENT4, 2222)?.expiresInSeconds).toBeGreaterThanOrEqual(55);
      expect(find(grants, CLIENT6, 2222)?.expiresInSeconds).toBeLessThanOrEqual(2);
    });

    it("when a grant is opened again before it expires then it outlives its first timeout", async () => {
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 3 }]);
      await h.elapse(2);
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 3 }]);
      await h.elapse(2);
      expect(find(await h.firewall.list(), CLIENT4, 2222)).toBeDefined();
    });

    it("when a grant has a bad address or port then the call is rejected with TKNOCK_INVALID_GRANT and nothing is opened", async () => {
      for (const bad of [
        { src: "198.18.0.3 . 2222 }; flush ruleset; add element inet tknock grants4 { 198.18.0.4", port: 2222, openSeconds: 30 },
        { src: "fe80::1%eth0", port: 2222, openSeconds: 30 },
        { src: "example.org", port: 2222, openSeconds: 30 },
        { src: CLIENT4, port: 70000, openSeconds: 30 },
        { src: CLIENT4, port: 2222, openSeconds: -1 },
      ]) {
        expect(await rejectionCodeOf(h.firewall.open([{ src: "198.18.0.9", port: 2222, openSeconds: 30 }, bad]))).toBe("TKNOCK_INVALID_GRANT");
      }
      expect(await h.firewall.list()).toEqual([]);
    });

    it("when many grants are opened at once then every one is listed", async () => {
      const grants = Array.from({ length: 40 }, (_, i) => ({ src: `198.18.1.${i + 1}`, port: 2222, openSeconds: 30 }));
      await Promise.all(grants.map((g) => h.firewall.open([g])));
      expect((await h.firewall.list()).map((g) => g.src).sort()).toEqual(grants.map((g) => g.src).sort());
    });

    it("when no grant is given then open does nothing", async () => {
      await h.firewall.open([]);
      expect(await h.firewall.list()).toEqual([]);
    });

    it("when the gate was just installed then check finds it intact, and reports a gate with other ports as different (when it owns one)", async () => {
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      expect(await h.firewall.check(GATE)).toBeUndefined();
      const other = await h.firewall.check({ ...GATE, protectedPorts: [2222, 2223] });
      if (caps.heals) expect(other?.kind).toMatch(/^(rules|elements)-differ$/);
      else expect(other).toBeUndefined();
    });

    for (const change of caps.heals ? (["flush", "delete-table", "add-rule"] as const) : []) {
      it(`when the gate is changed from outside (${change}) then check reports it, and install plus open restore the gate and the grant`, async () => {
        if (!h.outsideKinds || !h.outside) throw new Error("a healing firewall's harness needs outside and outsideKinds");
        await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
        await h.outside(change);
        expect((await h.firewall.check(GATE))?.kind).toBe(h.outsideKinds[change]);
        await h.firewall.install(GATE);
        await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 25 }]);
        expect(await h.firewall.check(GATE)).toBeUndefined();
        expect(find(await h.firewall.list(), CLIENT4, 2222)?.expiresInSeconds).toBeGreaterThanOrEqual(20);
      });
    }

    itIf(caps.watchSet)(
      "when the prefilter's watch set is replaced every window then check still finds the gate intact, and a repair puts the ports back",
      async () => {
        if (!h.watched || !h.outside || !h.outsideKinds) throw new Error("a watch-set firewall's harness needs watched, outside and outsideKinds");
        const gate: GateSpec = { ...GATE, nflogKnocks: { group: 5, min: 40000, max: 40100, watchOnly: true } };
        await h.firewall.install(gate);
        await h.firewall.setWatch?.({ starts: [40007, 40003], others: [40090] });
        expect(await h.watched()).toEqual([40003, 40007, 40090]);
        expect(await h.firewall.check(gate)).toBeUndefined();
        await h.firewall.setWatch?.({ starts: [40050], others: [] });
        expect(await h.watched()).toEqual([40050]);
        expect(await h.firewall.check(gate)).toBeUndefined();
        await h.outside("flush");
        expect((await h.firewall.check(gate))?.kind).toBe(h.outsideKinds.flush);
        await h.firewall.install(gate);
        expect(await h.watched()).toEqual([40050]);
        expect(await h.firewall.check(gate)).toBeUndefined();
        expect(await rejectionCodeOf(Promise.resolve().then(() => h.firewall.setWatch?.({ starts: [70000], others: [] })))).toBe("TKNOCK_INVALID_GATE");
      },
    );

    it("when the gate is removed then no grant is left, open is rejected with TKNOCK_FIREWALL, and removing again is fine", async () => {
      await h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      await h.firewall.remove();
      expect(await h.firewall.list()).toEqual([]);
      expect(await rejectionCodeOf(h.firewall.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]))).toBe("TKNOCK_FIREWALL");
      await h.firewall.remove();
    });
  });
}

class FakeClock implements Clock {
  constructor(public ms: number) {}
  nowMs(): number {
    return this.ms;
  }
}

firewallContract("memory", { heals: true, watchSet: true }, async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const firewall = new MemoryFirewall(clock);
  return {
    firewall,
    elapse: async (seconds) => {
      clock.ms += seconds * 1000;
    },
    outside: async (change) => firewall.simulateOutsideChange(change === "add-rule" ? "alter" : "flush"),
    watched: async () => [...firewall.watched],
    outsideKinds: { flush: "table-missing", "delete-table": "table-missing", "add-rule": "rules-differ" },
  };
});

/**
 * The command backend with a fake clock; its commands are real processes (a shell that appends its arguments to a
 * file, the program and script being the test's choice), so argv building and execFile are both exercised.
 */
firewallContract("command", { heals: false, watchSet: false }, async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const dir = await mkdtemp(join(tmpdir(), "tknock-command-contract-"));
  const record = ["/bin/sh", "-c", `echo "$0 $1 $2 $3" >> ${join(dir, "commands.log")}`];
  const firewall = new CommandFirewall({
    open: [...record, "open", "{ip}", "{port}/{proto}"],
    close: [...record, "close", "{ip}", "{port}/{proto}"],
    statePath: join(dir, "grants.json"),
    clock,
    sweepMs: 60_000,
  });
  return {
    firewall,
    elapse: async (seconds) => {
      clock.ms += seconds * 1000;
      await firewall.sweep();
    },
  };
});

firewallContract("none", { heals: false, watchSet: false }, async () => {
  const clock = new FakeClock(1_700_000_000_000);
  return {
    firewall: new NoneFirewall(clock),
    elapse: async (seconds) => {
      clock.ms += seconds * 1000;
    },
  };
});

describe("MemoryFirewall.wouldLog with the prefilter", () => {
  it("when a source has sent no first port then its packets to later ports and tripwires are not logged; after one they are, until it goes quiet for activeSeconds", async () => {
    const clock = new FakeClock(1_000_000);
    const fw = new MemoryFirewall(clock);
    await fw.install({ ...GATE, nflogKnocks: { group: 5, min: 40000, max: 40100, watchOnly: true, activeSeconds: 6 } });
    await fw.setWatch({ starts: [40010], others: [40020, 40030] });
    expect(fw.wouldLog(40020, CLIENT4)).toBe(false);
    expect(fw.wouldLog(40010, CLIENT4)).toBe(true);
    expect(fw.wouldLog(40020, CLIENT4)).toBe(true);
    expect(fw.wouldLog(40020, "198.18.0.77")).toBe(false);
    clock.ms += 5000;
    expect(fw.wouldLog(40030, CLIENT4)).toBe(true); // renews
    clock.ms += 5000;
    expect(fw.wouldLog(40030, CLIENT4)).toBe(true);
    clock.ms += 6001;
    expect(fw.wouldLog(40030, CLIENT4)).toBe(false);
    expect(fw.wouldLog(40050, CLIENT4)).toBe(false);
  });
});

describe("MemoryFirewall.isAllowed", () => {
  it("when a protected port is granted then only that source passes, until the grant expires; the knock range never passes", async () => {
    const clock = new FakeClock(1_000_000);
    const fw = new MemoryFirewall(clock);
    expect(fw.isAllowed(CLIENT4, 2222)).toBe(true); // no gate installed yet
    await fw.install(GATE);
    expect(fw.isAllowed(CLIENT4, 2222)).toBe(false);
    await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
    expect(fw.isAllowed(CLIENT4, 2222)).toBe(true);
    expect(fw.isAllowed("198.18.0.3", 2222)).toBe(false);
    expect(fw.isAllowed(CLIENT4, 40050)).toBe(false);
    expect(fw.isAllowed(CLIENT4, 8080)).toBe(true);
    expect(fw.isAllowed(CLIENT4, 2222, clock.ms + 29_999)).toBe(true);
    expect(fw.isAllowed(CLIENT4, 2222, clock.ms + 30_000)).toBe(false);
    expect(fw.opened).toEqual([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
  });

  it("when services are exempted then only their protocol and port pass the knock range, and a protected port stays gated", async () => {
    const fw = new MemoryFirewall(new FakeClock(1_000_000));
    await fw.install({
      ...GATE,
      exemptServices: [
        { proto: "udp", port: 40060 },
        { proto: "tcp", port: 2222 },
      ],
    });
    expect(fw.isAllowed(CLIENT4, 40060, undefined, "udp")).toBe(true);
    expect(fw.isAllowed(CLIENT4, 40060, undefined, "tcp")).toBe(false);
    expect(fw.isAllowed(CLIENT4, 40061, undefined, "udp")).toBe(false);
    expect(fw.isAllowed(CLIENT4, 2222, undefined, "tcp")).toBe(false);
  });
});

describe("NftablesFirewall without nft", () => {
  it("when the nft binary is missing then every operation is rejected with TKNOCK_FIREWALL", async () => {
    const fw = new NftablesFirewall({ nftPath: "/nonexistent/nft" });
    expect(await rejectionCodeOf(fw.install(GATE))).toBe("TKNOCK_FIREWALL");
    expect(await rejectionCodeOf(fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]))).toBe("TKNOCK_FIREWALL");
    expect(await rejectionCodeOf(fw.list())).toBe("TKNOCK_FIREWALL");
    await fw.close();
  });

  it("when nft stops answering then open is rejected with TKNOCK_FIREWALL and the next open uses a new nft", async () => {
    // A stand-in for `nft -i`: silent on success, nft's error block for the sentinel, never answers 198.18.0.66.
    const dir = await mkdtemp(join(tmpdir(), "tknock-fake-nft-"));
    const script = join(dir, "fake-nft.cjs");
    await writeFile(
      script,
      `let hung = false;
      require("readline").createInterface({ input: process.stdin }).on("line", (line) => {
        if (line.includes("198.18.0.66")) hung = true;
        if (!hung && line.startsWith("tknock-sync-")) process.stderr.write("Error: syntax error\\n" + line + "\\n      ^\\n");
      });`,
    );
    const fw = new NftablesFirewall({ nftCommand: [process.execPath, script], commandTimeoutMs: 500 });
    try {
      await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      const first = fw.nftPid;
      expect(await rejectionCodeOf(fw.open([{ src: "198.18.0.66", port: 2222, openSeconds: 30 }]))).toBe("TKNOCK_FIREWALL");
      await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      expect(fw.nftPid).not.toBe(first);
    } finally {
      await fw.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describeAsRoot("NftablesFirewall in a namespace", () => {
  let lab: Lab;
  const nftIn = (): string[] => ["ip", "netns", "exec", lab.host("fw").ns, "nft"];

  beforeAll(async () => {
    await removeStaleLabs();
    lab = await Lab.create(["fw", "peer"]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  firewallContract("nftables", { heals: true, watchSet: true }, async () => ({
    firewall: new NftablesFirewall({ nftCommand: nftIn() }),
    elapse: (seconds) => sleep(seconds * 1000),
    outside: async (change) => {
      const argv = {
        flush: ["nft", "flush", "ruleset"],
        "delete-table": ["nft", "delete", "table", "inet", "tknock"],
        "add-rule": ["nft", "insert", "rule", "inet", "tknock", "input", "tcp", "dport", "2222", "accept"],
      }[change];
      const r = await lab.exec("fw", argv);
      if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    },
    watched: async () => {
      const ports: number[] = [];
      for (const set of ["starts", "watch"]) {
        const r = await lab.exec("fw", ["nft", "-j", "list", "set", "inet", "tknock", set]);
        if (r.code !== 0) throw new Error(`nft list set ${set}: ${r.stderr}`);
        const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: number[] } }[] };
        ports.push(...(doc.nftables.find((i) => i.set)?.set?.elem ?? []));
      }
      return ports.sort((a, b) => a - b);
    },
    outsideKinds: NFT_OUTSIDE_KINDS,
  }));

  describe("nftables only", () => {
    let fw: NftablesFirewall;

    beforeEach(async () => {
      fw = new NftablesFirewall({ nftCommand: nftIn() });
      await fw.remove();
      await fw.install(GATE);
    });

    afterEach(async () => {
      await fw.close();
    });

    it("when the prefilter's active set is full then a new source is not added and its protocol is marked overflowing, so tripwires are logged for everyone", async () => {
      const gate: GateSpec = {
        ...GATE,
        knockRange: { min: 40000, max: 40100 },
        nflogKnocks: { group: 9, min: 40000, max: 40100, watchOnly: true, activeSeconds: 60, activeSetSize: 2 },
      };
      await fw.install(gate);
      await fw.setWatch({ starts: [40010], others: [40020] });
      const sources = ["198.18.0.101", "198.18.0.102", "198.18.0.103"];
      for (const a of sources) expect((await lab.exec("peer", ["ip", "addr", "add", `${a}/24`, "dev", "eth0"])).code).toBe(0);
      const send = async (from: string, port: number): Promise<void> => {
        const script = `const s=require("dgram").createSocket("udp4");s.bind({address:${JSON.stringify(from)}},()=>s.send("k",${port},${JSON.stringify(lab.host("fw").ipv4)},()=>s.close()))`;
        const r = await lab.exec("peer", [process.execPath, "-e", script]);
        expect(r.code).toBe(0);
      };
      const elements = async (set: string): Promise<string[]> => {
        const r = await lab.exec("fw", ["nft", "-j", "list", "set", "inet", "tknock", set]);
        const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: { elem: { val: string } }[] } }[] };
        return (doc.nftables.find((i) => i.set)?.set?.elem ?? []).map((e) => e.elem.val).sort();
      };
      await send(sources[0]!, 40010);
      await send(sources[1]!, 40010);
      expect(await elements("active4")).toEqual(sources.slice(0, 2));
      expect(await elements("overflow")).toEqual([]);
      await send(sources[2]!, 40010);
      expect(await elements("active4")).toEqual(sources.slice(0, 2));
      expect(await elements("overflow")).toEqual(["udp"]);
      const rules = await lab.exec("fw", ["nft", "list", "chain", "inet", "tknock", "input"]);
      expect(rules.stdout).toMatch(/th dport @watch meta l4proto @overflow log group 9/);
    });

    it("when nft monitor runs then the first heartbeat after its start is not trusted, later ones are, and a stopped monitor fails the heartbeat", async () => {
      const ac = new AbortController();
      const watched = new NftablesFirewall({ nftCommand: nftIn(), heartbeatTimeoutMs: 1000 });
      const changes: string[] = [];
      try {
        await watched.install(GATE);
        watched.watch((what) => changes.push(what), ac.signal);
        const answers: boolean[] = [];
        while (answers.length < 20 && answers.at(-1) !== true) answers.push(await watched.heartbeat());
        expect(answers[0]).toBe(false); // not trusted: the monitor may have missed what came before it listened
        expect(answers.at(-1)).toBe(true);
        expect(await watched.heartbeat()).toBe(true);
        expect(changes).toEqual([]); // heartbeats are not changes to the gate
        const pid = (await lab.exec("fw", ["pgrep", "-P", String(process.pid), "-f", "^nft monitor$"])).stdout.trim().split("\n")[0];
        expect(pid).toMatch(/^\d+$/);
        process.kill(Number(pid), "SIGSTOP");
        try {
          expect(await watched.heartbeat()).toBe(false);
        } finally {
          process.kill(Number(pid), "SIGCONT");
        }
      } finally {
        ac.abort();
        await watched.close();
      }
    });

    it("when the gate is removed then another table survives", async () => {
      const other = await lab.exec("fw", ["nft", "-f", "-"], {
        input: "add table inet other\nadd chain inet other input { type filter hook input priority 0; policy accept; }\n",
      });
      expect(other.code).toBe(0);
      await fw.remove();
      const tables = await lab.exec("fw", ["nft", "list", "tables"]);
      expect(tables.stdout).toContain("table inet other");
      expect(tables.stdout).not.toContain("table inet tknock");
      await lab.exec("fw", ["nft", "delete", "table", "inet", "other"]);
    });

    it("when someone adds a chain to our table then install leaves it, and install with replace rebuilds the table in one transaction", async () => {
      const added = await lab.exec("fw", ["nft", "add", "chain", "inet", "tknock", "extra"]);
      expect(added.code).toBe(0);
      await fw.install(GATE);
      expect((await fw.check(GATE))?.message).toMatch(/extra/);
      await fw.install(GATE, { replace: true });
      expect(await fw.check(GATE)).toBeUndefined();
      const chains = await lab.exec("fw", ["nft", "list", "chains", "inet"]);
      expect(chains.stdout).not.toContain("extra");
    });

    it("when the daemon restarts then the kernel's grants are kept and its install keeps them", async () => {
      await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      await fw.close();
      const restarted = new NftablesFirewall({ nftCommand: nftIn() });
      try {
        expect(find(await restarted.list(), CLIENT4, 2222)).toBeDefined();
        await restarted.install(GATE);
        expect(find(await restarted.list(), CLIENT4, 2222)).toBeDefined();
      } finally {
        await restarted.close();
      }
    });

    it("when the long-lived nft process dies then the next open starts a new one", async () => {
      await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      const first = fw.nftPid;
      expect(first).toBeDefined();
      process.kill(first as number, "SIGKILL");
      await sleep(100);
      await fw.open([{ src: CLIENT6, port: 2222, openSeconds: 30 }]);
      expect(fw.nftPid).not.toBe(first);
      expect(find(await fw.list(), CLIENT6, 2222)).toBeDefined();
    });

    it("when nft refuses a command then open is rejected with TKNOCK_FIREWALL, and works again once reinstalled", async () => {
      await lab.exec("fw", ["nft", "delete", "table", "inet", "tknock"]);
      expect(await rejectionCodeOf(fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]))).toBe("TKNOCK_FIREWALL");
      await fw.install(GATE);
      await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      expect(find(await fw.list(), CLIENT4, 2222)).toBeDefined();
    });
  });
});

// ---- real traffic -------------------------------------------------------------------------------------------

/** Prints open, timeout (no answer: filtered) or refused (RST: closed) for one TCP connect. */
const PROBE_JS = `
const [host, port] = process.argv.slice(1);
const s = require("net").connect({ host, port: Number(port), timeout: 1000 });
const done = (word) => { console.log(word); process.exit(0); };
s.on("connect", () => done("open"));
s.on("timeout", () => done("timeout"));
s.on("error", (e) => done(e.code === "ECONNREFUSED" ? "refused" : "error " + e.code));
`;

/** Sends one datagram and prints "reply" when one comes back within a second, else "timeout". */
const UDP_PROBE_JS = `
const [host, port] = process.argv.slice(1);
const s = require("dgram").createSocket(host.includes(":") ? "udp6" : "udp4");
const t = setTimeout(() => { console.log("timeout"); process.exit(0); }, 1000);
s.on("message", () => { clearTimeout(t); console.log("reply"); process.exit(0); });
s.send("ping", Number(port), host);
`;

/** A dual-stack UDP echo server. */
const UDP_SERVER_JS = `
const s = require("dgram").createSocket({ type: "udp6" });
s.on("message", (m, r) => s.send(m, r.port, r.address));
s.bind(Number(process.argv[1]), "::", () => console.log("listening"));
`;

/** A dual-stack echo server. */
const SERVER_JS = `
const port = Number(process.argv[1]);
const host = process.argv[2] ?? "::";
require("net").createServer((s) => { s.on("error", () => {}); s.pipe(s); }).listen({ port, host }, () => console.log("listening"));
`;

/** Connects once, prints "connected", then echoes each stdin line through the connection as "echo:LINE". */
const CLIENT_JS = `
const [host, port] = process.argv.slice(1);
const s = require("net").connect({ host, port: Number(port) }, () => console.log("connected"));
s.setEncoding("utf8");
s.on("data", (d) => { for (const l of d.split("\\n").filter(Boolean)) console.log("echo:" + l); });
s.on("error", (e) => console.log("error " + e.code));
process.stdin.on("data", (d) => s.write(d));
`;

function waitForLine(child: ChildProcess, want: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no "${want}" within ${timeoutMs} ms; got: ${seen.trim()}`)), timeoutMs);
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      seen += d;
      if (seen.split("\n").includes(want)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** The gate against real TCP and UDP traffic between lab hosts, for each backend that owns a gate in the kernel. */
function gatesRealTraffic(name: string, makeFirewall: (ns: string) => Firewall): void {
  describeAsRoot(`${name} gating real traffic between lab hosts`, () => {
    let lab: Lab;
    let fw: Firewall;
    let server4: string;
    let server6: string;

    const probe = async (from: string, host: string, port: number): Promise<string> => {
      const r = await lab.exec(from, [process.execPath, "-e", PROBE_JS, host, String(port)], { timeoutMs: 10_000 });
      return r.stdout.trim();
    };

    beforeAll(async () => {
      await removeStaleLabs();
      lab = await Lab.create(["server", "client", "third"]);
      expect(lab.host("client").ipv4).toBe(CLIENT4);
      server4 = lab.host("server").ipv4;
      server6 = lab.host("server").ipv6;
      const server = lab.spawn("server", [process.execPath, "-e", SERVER_JS, "2222"]);
      await waitForLine(server, "listening", 10_000);
      fw = makeFirewall(lab.host("server").ns);
      await fw.install(GATE);
    });

    afterAll(async () => {
      await fw?.close();
      await lab?.destroy();
    });

    it("when a port is neither protected nor in the knock range then the probe sees it closed (the probe can tell)", async () => {
      expect(await probe("client", server4, 2223)).toBe("refused");
    });

    it("when a TCP SYN goes to the knock range then there is no answer (filtered, not closed)", async () => {
      expect(await probe("client", server4, 40050)).toBe("timeout");
      expect(await probe("client", server6, 40100)).toBe("timeout");
    });

    it("when a source is granted then it alone reaches the protected port, per address family", async () => {
      expect(await probe("client", server4, 2222)).toBe("timeout");
      await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30 }]);
      expect(await probe("client", server4, 2222)).toBe("open");
      expect(await probe("third", server4, 2222)).toBe("timeout");
      expect(await probe("client", server6, 2222)).toBe("timeout");
      await fw.open([{ src: CLIENT6, port: 2222, openSeconds: 30 }]);
      expect(await probe("client", server6, 2222)).toBe("open");
    });

    it("when local services listen in the knock range then they answer at once per protocol and family, unused ports and a loopback-only service stay filtered, and a protected port stays gated", async () => {
      expect(await probe("third", server4, 40050)).toBe("timeout"); // nothing listens yet: this cannot pass vacuously
      const tcp = lab.spawn("server", [process.execPath, "-e", SERVER_JS, "40050"]);
      const udp = lab.spawn("server", [process.execPath, "-e", UDP_SERVER_JS, "40060"]);
      const local = lab.spawn("server", [process.execPath, "-e", SERVER_JS, "40070", "127.0.0.1"]);
      const udpProbe = async (port: number, host = server4): Promise<string> =>
        (await lab.exec("third", [process.execPath, "-e", UDP_PROBE_JS, host, String(port)], { timeoutMs: 10_000 })).stdout.trim();
      try {
        await Promise.all([waitForLine(tcp, "listening", 10_000), waitForLine(udp, "listening", 10_000), waitForLine(local, "listening", 10_000)]);
        // Not in exemptServices: the gate's socket rule finds each socket without the daemon.
        expect(await probe("third", server4, 40050)).toBe("open");
        expect(await probe("third", server6, 40050)).toBe("open");
        expect(await udpProbe(40060)).toBe("reply");
        expect(await udpProbe(40060, server6)).toBe("reply");
        expect(await probe("third", server4, 40060)).toBe("timeout"); // tcp/40060: only udp listens
        expect(await probe("third", server4, 40051)).toBe("timeout");
        expect(await probe("third", server4, 40070)).toBe("timeout"); // bound to 127.0.0.1 only
        expect(await probe("third", server4, 2222)).toBe("timeout"); // protected, though something listens

        // What the daemon lists: its port passes even before anything listens there (closed, not filtered).
        await fw.install({
          ...GATE,
          exemptServices: [
            { proto: "tcp", port: 40080 },
            { proto: "tcp", port: 2222 },
          ],
        });
        expect(await probe("third", server4, 40080)).toBe("refused");
        expect(await probe("third", server4, 2222)).toBe("timeout");
        await fw.install(GATE);
        expect(await probe("third", server4, 40080)).toBe("timeout");

        tcp.kill("SIGKILL");
        udp.kill("SIGKILL");
        await Promise.all([new Promise((r) => tcp.once("exit", r)), new Promise((r) => udp.once("exit", r))]);
        expect(await probe("third", server4, 40050)).toBe("timeout");
        expect(await udpProbe(40060)).toBe("timeout");
      } finally {
        tcp.kill("SIGKILL");
        udp.kill("SIGKILL");
        local.kill("SIGKILL");
        await fw.install(GATE);
      }
    });

    it("when a grant expires then a connection made during it keeps working and a new one is filtered", async () => {
      const src = lab.host("third").ipv4;
      await fw.open([{ src, port: 2222, openSeconds: 2 }]);
      const client = lab.spawn("third", [process.execPath, "-e", CLIENT_JS, server4, "2222"], { stdio: ["pipe", "pipe", "pipe"] });
      try {
        await waitForLine(client, "connected", 5000);
        const deadline = Date.now() + 6000;
        while (find(await fw.list(), src, 2222) && Date.now() < deadline) await sleep(250);
        expect(find(await fw.list(), src, 2222)).toBeUndefined();
        const echoed = waitForLine(client, "echo:still-here", 5000);
        client.stdin?.write("still-here\n");
        await echoed;
        expect(await probe("third", server4, 2222)).toBe("timeout");
      } finally {
        client.kill("SIGKILL");
      }
    });
  });
}

gatesRealTraffic("NftablesFirewall", (ns) => new NftablesFirewall({ nftCommand: ["ip", "netns", "exec", ns, "nft"] }));
gatesRealTraffic("IptablesFirewall", (ns) => new IptablesFirewall({ commandPrefix: ["ip", "netns", "exec", ns] }));

describeAsRoot("IptablesFirewall in a namespace", () => {
  let lab: Lab;
  const prefix = (): string[] => ["ip", "netns", "exec", lab.host("fw").ns];
  const must = async (argv: string[]): Promise<string> => {
    const r = await lab.exec("fw", argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    await removeStaleLabs();
    lab = await Lab.create(["fw"]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  firewallContract("iptables", { heals: true, watchSet: true }, async () => ({
    firewall: new IptablesFirewall({ commandPrefix: prefix() }),
    elapse: (seconds) => sleep(seconds * 1000),
    outside: async (change) => {
      for (const tool of ["iptables", "ip6tables"]) {
        if (change === "flush") await must([tool, "-F"]);
        if (change === "delete-table") {
          await must([tool, "-D", "INPUT", "-j", "tknock-in"]);
          await must([tool, "-F", "tknock-in"]);
          await must([tool, "-X", "tknock-in"]);
        }
        if (change === "add-rule") await must([tool, "-I", "tknock-in", "1", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT"]);
      }
    },
    watched: async () => {
      const out = await must(["ipset", "save", "tknock-watch"]);
      return [...out.matchAll(/^add tknock-watch (\d+)$/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
    },
    outsideKinds: { flush: "chain-missing", "delete-table": "chain-missing", "add-rule": "rules-differ" },
  }));

  it("when the gate is installed over a host's own rules, with the forward gate, and then removed, then iptables-save and ipset list are as before", async () => {
    // A host that already runs iptables: its rules, and Docker's DOCKER-USER chain.
    for (const tool of ["iptables", "ip6tables"]) {
      await must([tool, "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"]);
      await must([tool, "-N", "DOCKER-USER"]);
      await must([tool, "-A", "DOCKER-USER", "-j", "RETURN"]);
      await must([tool, "-A", "FORWARD", "-j", "DOCKER-USER"]);
    }
    await must(["ipset", "create", "host-own", "hash:ip"]);
    const snapshot = async (): Promise<string> =>
      [await must(["iptables-save"]), await must(["ip6tables-save"]), await must(["ipset", "save"])].join("\n").replace(/^#.*$/gm, "");
    const before = await snapshot();
    const fw = new IptablesFirewall({ commandPrefix: prefix() });
    const gate: GateSpec = { ...GATE, gateForward: true, exemptServices: [{ proto: "udp", port: 40060 }] };
    await fw.install(gate);
    await fw.install(gate);
    await fw.open([{ src: CLIENT4, port: 2222, openSeconds: 30, client: "alice" }]);
    expect(await fw.check(gate)).toBeUndefined();
    const during = await must(["iptables", "-S", "DOCKER-USER"]);
    expect(during.split("\n")[1]).toBe("-A DOCKER-USER -j tknock-fwd");
    expect(find(await fw.list(), CLIENT4, 2222)?.client).toBe("alice");
    await fw.remove();
    expect(await snapshot()).toBe(before);
  });
});
