/**
 * The command backend in the lab (issue 15's "done when"): the real daemon with `"firewall": "command"`, whose
 * open and close commands are the test's own pair of nft commands, adding and deleting an element of a set in a
 * table the test set up as "the host's firewall". A knock opens for its source only, the grant closes after
 * openSeconds (the daemon runs the close command), a replay is refused; a client enrolled with its own
 * --open-seconds gets that time; and a daemon killed during a grant leaves it open (fail-open, as documented)
 * until it starts again, which closes it.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";
import { knockOpensForItsSourceOnlyAndReplayIsRefused, startWithListener } from "./listener-scenarios.js";

// Long enough that the knock, both probes and the replay check fit in it on a busy CI box.
const OPEN_SECONDS = 8;
const LONG_SECONDS = 120;
const NFT = "/usr/sbin/nft";

describeAsRoot("command backend in the lab", () => {
  let t: TknockLab;
  let service: ChildProcess;

  const must = async (argv: string[], input?: string): Promise<string> => {
    const r = await t.lab.exec("server", argv, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const allowed = async (): Promise<string> => (await must([NFT, "list", "set", "inet", "hostfw", "allowed"])).replace(/\s+/g, " ");

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: OPEN_SECONDS });
    // The host's own firewall: the protected port is dropped unless the source and port are in @allowed.
    await must(
      [NFT, "-f", "-"],
      `table inet hostfw {
        set allowed { type ipv4_addr . inet_service; }
        chain input { type filter hook input priority 0; policy accept;
          ct state established,related accept
          tcp dport ${t.protectPort} ip saddr . tcp dport @allowed accept
          tcp dport ${t.protectPort} drop
        }
      }\n`,
    );
    const element = ["{", "{ip}", ".", "{port}", "}"];
    service = await startWithListener(t, {
      firewall: "command",
      command: {
        open: [NFT, "add", "element", "inet", "hostfw", "allowed", ...element],
        close: [NFT, "delete", "element", "inet", "hostfw", "allowed", ...element],
      },
    });
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the daemon starts then it warns that the command backend is fail-open", async () => {
    await t.waitForLog((l) => l.level === 40 && String(l.msg).includes("if the daemon dies during a grant, the port stays open"), 1000);
  });

  it("when the client knocks then the open command lets it in only, the replay is refused, and after openSeconds the close command shuts it", async () => {
    await knockOpensForItsSourceOnlyAndReplayIsRefused(t);
    expect(await allowed()).toContain(`${t.lab.host("client").ipv4} . ${t.protectPort}`);
    await t.waitForLog((l) => l.msg === "grant closed" && l["client"] === "alice", (OPEN_SECONDS + 5) * 1000);
    expect(await allowed()).not.toContain(t.lab.host("client").ipv4);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  it("when a client with its own --open-seconds knocks then status shows its longer time; when the daemon is killed the grant stays open, and the next start closes it", async () => {
    const mark = t.logCount;
    await t.enrollClient("bob", ["--open-seconds", String(LONG_SECONDS)]);
    await t.waitForLog((l) => l.msg === "clients reloaded", 5000, mark);
    const knocked = await t.client(["bob", "--wait", "10"]);
    expect(knocked.code, knocked.stderr).toBe(0);
    const status = JSON.parse(await t.serverOk(["status", "--json"])) as { grants: { client?: string; expiresInSeconds: number }[] };
    const grant = status.grants.find((g) => g.client === "bob");
    expect(grant?.expiresInSeconds).toBeGreaterThan(LONG_SECONDS - 20);
    expect((await t.serverOk(["status"])).split("\n")).toContain(
      `  ${t.lab.host("client").ipv4} -> port ${t.protectPort}, ${grant?.expiresInSeconds}s left (bob)`,
    );

    await t.stopDaemon("SIGKILL");
    await sleep(500);
    expect((await t.probe("client", t.protectPort)).state).toBe("open"); // fail-open while the daemon is down
    const restart = t.logCount;
    await t.startDaemon();
    await t.waitForLog((l) => l.msg === "grant closed" && l["client"] === "bob", 5000, restart);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");
    expect(await allowed()).not.toContain(t.lab.host("client").ipv4);
  }, 60_000);
});
