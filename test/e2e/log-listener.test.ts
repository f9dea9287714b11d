/**
 * The log listener in the lab (issue 12): the real `tknock-server run` with `listener: "log"` reads the kernel's
 * log of the gate's `log prefix "tknock: "` rule, from /dev/kmsg (source kmsg) and from a file that the test
 * writes as a syslog daemon would (source file:, lines copied from /dev/kmsg with an RFC 3339 time), and from
 * journald (`journalctl -k -f`): the host's own journald when it runs one, else one the suite starts and stops
 * (test/support/journald.ts; CI machines run no systemd).
 * The lab's server logs from a non-initial network namespace, which the kernel does only with
 * net.netfilter.nf_log_all_netns=1: set for this suite and restored after it, also on failure.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { buildFloodSender } from "../../bench/flood-sender.js";
import { TknockLab } from "../../lab/tknock-lab.js";
import { ascendingSweepOpensNothing, knockOpensForItsSourceOnlyAndReplayIsRefused, startWithListener } from "./listener-scenarios.js";
import { describeAsRoot } from "../support/root.js";
import { ensureJournald, type Journald } from "../support/journald.js";

const RANGE = { min: 40000, max: 44999 };
const SYSCTL = "net.netfilter.nf_log_all_netns";

function sysctl(value?: string): string {
  const r = spawnSync("sysctl", value === undefined ? ["-n", SYSCTL] : ["-q", "-w", `${SYSCTL}=${value}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sysctl ${SYSCTL} failed: ${r.stderr}`);
  return r.stdout.trim();
}

describeAsRoot("end to end: the log listener", () => {
  let oldNetns: string;
  beforeAll(() => {
    buildFloodSender();
    oldNetns = sysctl();
    sysctl("1");
  });
  afterAll(() => {
    sysctl(oldNetns);
  });

  for (const source of ["kmsg", "file", "journald"] as const) {
    describe(`source ${source}`, () => {
      let t: TknockLab;
      let copier: ChildProcess | undefined;
      let service: ChildProcess | undefined;
      let journald: Journald | undefined;

      beforeAll(async () => {
        if (source === "journald") journald = await ensureJournald();
        t = await TknockLab.create({ openSeconds: 5, extraConfig: { knockRange: RANGE } });
        const logFile = join(t.dir, "kern.log");
        if (source === "file") {
          // A stand-in syslog daemon: the gate's kernel lines about this lab, appended with a sub-second time.
          writeFileSync(logFile, "");
          copier = spawn("cat", ["/dev/kmsg"], { stdio: ["ignore", "pipe", "ignore"] });
          let partial = "";
          copier.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
            const lines = (partial + chunk).split("\n");
            partial = lines.pop() ?? "";
            const ours = lines.map((l) => l.slice(l.indexOf(";") + 1)).filter((l) => l.startsWith("tknock: ") && l.includes(` DST=${t.serverAddr} `));
            if (ours.length > 0) appendFileSync(logFile, ours.map((l) => `${new Date().toISOString()} server kernel: ${l}\n`).join(""));
          });
        }
        service = await startWithListener(t, { listener: "log", logSource: source === "file" ? `file:${logFile}` : source });
      }, 120_000);

      afterAll(async () => {
        copier?.kill("SIGKILL");
        service?.kill();
        await t?.destroy();
        await journald?.stop();
      });

      it("when the client knocks then the port opens for the client only; a replay from another host is refused and recorded", async () => {
        await knockOpensForItsSourceOnlyAndReplayIsRefused(t);
      }, 60_000);

      it("when a third host sweeps the whole knock range in ascending order then nothing opens and it is recorded as brute force", async () => {
        await ascendingSweepOpensNothing(t, RANGE);
      }, 60_000);
    });
  }
});
