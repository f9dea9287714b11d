/**
 * The forward gate (gateForward) in the lab, for both kernel backends: a service in a namespace of its own behind
 * the server, published through a DNAT on the server (what `docker run -p 8080:80` sets up), is unreachable
 * from the client and another host before a knock, and reachable from the client only after the client's knock.
 * Its traffic never passes the input hook: only the forward gate, matching the port before the DNAT, closes it.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { TknockLab } from "../../lab/tknock-lab.js";

const PUBLISHED = 8080;
const INNER = 80;

describeAsRoot("forward gate: a service published through a DNAT", () => {
  for (const firewall of ["nftables", "iptables"] as const) {
    describe(`firewall ${firewall}`, () => {
      let t: TknockLab;
      const children: ChildProcess[] = [];
      let rulesetBefore: string;

      const must = async (host: string, argv: string[], input?: string): Promise<string> => {
        const r = await t.lab.exec(host, argv, input === undefined ? {} : { input });
        if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
        return r.stdout;
      };

      beforeAll(async () => {
        t = await TknockLab.create({ protectPort: PUBLISHED, openSeconds: 30, extraConfig: { firewall, gateForward: true } });
        const svc = await t.lab.addHostBehind("svc", "server");
        await must(
          "server",
          ["nft", "-f", "-"],
          `table ip labnat {\n chain pre {\n  type nat hook prerouting priority dstnat;\n  tcp dport ${PUBLISHED} dnat to ${svc.ipv4}:${INNER}\n }\n}\n`,
        );
        const service = t.startService(INNER, "hello from the container\n", "svc");
        children.push(service);
        await new Promise<void>((resolve) => service.stdout?.once("data", () => resolve()));
        // Without tknock the published port answers everyone: the DNAT works.
        await expectState("other", "open");
        rulesetBefore = await must("server", ["nft", "list", "ruleset"]);
        await t.enrollClient("alice");
        await t.startDaemon();
      }, 60_000);

      afterAll(async () => {
        for (const c of children) c.kill();
        await t?.destroy();
      });

      async function expectState(host: string, state: "open" | "filtered"): Promise<void> {
        const probe = await t.probe(host, PUBLISHED);
        expect(probe.state).toBe(state);
        if (state === "open") expect(probe.data).toContain("hello from the container");
      }

      it("when nobody knocked then the published port is unreachable from the client and another host; after the client's knock it answers the client only", async () => {
        await expectState("client", "filtered");
        await expectState("other", "filtered");
        const r = await t.client(["alice", "--wait", "10"]);
        expect(r.code, r.stderr).toBe(0);
        await expectState("client", "open");
        await expectState("other", "filtered");
      }, 60_000);

      it("when the daemon stops and the gate is removed then the published port answers everyone again and nft's ruleset is as before", async () => {
        await t.stopDaemon();
        await expectState("other", "filtered");
        await t.serverOk(["firewall", "remove"]);
        await expectState("other", "open");
        if (firewall === "nftables") expect(await must("server", ["nft", "list", "ruleset"])).toBe(rulesetBefore);
      }, 30_000);
    });
  }
});
