/**
 * The nflog listener in the lab (issue 12): the real `tknock-server run` with `listener: "nflog"` installs a
 * `log group N` rule for the knock range in its gate and reads that NFLOG group with `tcpdump -i nflog:N`. A
 * userspace NFLOG group is per network namespace and needs no net.netfilter.nf_log_all_netns (that sysctl only
 * concerns the kernel-log backend), so unlike the log listener's suite this one changes nothing on the host.
 */
import { type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildFloodSender } from "../../bench/flood-sender.js";
import { TknockLab } from "../../lab/tknock-lab.js";
import { ascendingSweepOpensNothing, knockOpensForItsSourceOnlyAndReplayIsRefused, startWithListener } from "./listener-scenarios.js";
import { describeAsRoot } from "../support/root.js";

const RANGE = { min: 40000, max: 44999 };
const GROUP = 17;

describeAsRoot("end to end: the nflog listener", () => {
  let t: TknockLab;
  let service: ChildProcess | undefined;

  beforeAll(async () => {
    buildFloodSender();
    t = await TknockLab.create({ openSeconds: 5, extraConfig: { knockRange: RANGE } });
    service = await startWithListener(t, { listener: "nflog", nflogGroup: GROUP, prefilter: false });
  }, 120_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the client knocks then the port opens for the client only; a replay from another host is refused and recorded", async () => {
    await knockOpensForItsSourceOnlyAndReplayIsRefused(t);
  }, 60_000);

  it("when a third host sweeps the whole knock range in ascending order then nothing opens and it is recorded as brute force", async () => {
    await ascendingSweepOpensNothing(t, RANGE);
  }, 60_000);

  it("when the daemon runs then its gate logs the knock range to the NFLOG group and tcpdump reads nflog:N", async () => {
    const table = await t.lab.exec("server", ["nft", "list", "table", "inet", "tknock"]);
    expect(table.stdout).toContain(`th dport ${RANGE.min}-${RANGE.max} log group ${GROUP} snaplen 128 queue-threshold 1`);
  });
});
