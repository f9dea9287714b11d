/**
 * The iptables backend in the lab (issue 15's "done when"): the real daemon with `"firewall": "iptables"` on a
 * server that already runs iptables rules of its own. A knock opens the protected port for its source only, the
 * grant closes after openSeconds (the ipset timeout), a replay is refused; `firewall remove` leaves iptables-save,
 * ip6tables-save, ipset and nft's ruleset as they were before the daemon ran.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";
import { knockOpensForItsSourceOnlyAndReplayIsRefused, startWithListener } from "./listener-scenarios.js";

// Long enough that the knock, both probes and the replay check fit in it on a busy CI box.
const OPEN_SECONDS = 8;

describeAsRoot("iptables backend in the lab", () => {
  let t: TknockLab;
  let service: ChildProcess;
  let before: string;

  const must = async (argv: string[]): Promise<string> => {
    const r = await t.lab.exec("server", argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  /** Everything a firewall backend could leave behind, without the comment lines that carry a time. */
  const firewallState = async (): Promise<string> =>
    [await must(["iptables-save"]), await must(["ip6tables-save"]), await must(["ipset", "save"]), await must(["nft", "list", "ruleset"])]
      .join("\n")
      .replace(/^#.*$/gm, "");

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: OPEN_SECONDS });
    // The host's own firewall, which tknock must leave as it found it.
    for (const tool of ["iptables", "ip6tables"]) await must([tool, "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"]);
    before = await firewallState();
    service = await startWithListener(t, { firewall: "iptables" });
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the client knocks then the port opens for it only, the replay from another host is refused, and the grant closes after openSeconds", async () => {
    const rules = await must(["iptables", "-S", "INPUT"]);
    expect(rules.split("\n")[1]).toBe("-A INPUT -j tknock-in");
    await knockOpensForItsSourceOnlyAndReplayIsRefused(t);
    const status = JSON.parse(await t.serverOk(["status", "--json"])) as { ok: boolean; grants: { src: string; expiresInSeconds: number }[] };
    expect(status.ok).toBe(true);
    expect(status.grants.map((g) => g.src)).toEqual([t.lab.host("client").ipv4]);
    const deadline = Date.now() + (OPEN_SECONDS + 5) * 1000;
    while ((JSON.parse(await t.serverOk(["status", "--json"])) as { grants: unknown[] }).grants.length > 0 && Date.now() < deadline) await sleep(250);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  it("when the daemon stops and the gate is removed then the host's iptables, ipset and nft rules are exactly as before the daemon ran", async () => {
    expect(await t.stopDaemon()).toBe(0);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered"); // fail closed: the gate stays
    await t.serverOk(["firewall", "remove"]);
    expect(await firewallState()).toBe(before);
    expect((await t.probe("other", t.protectPort)).state).toBe("open");
  }, 30_000);
});
