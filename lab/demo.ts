/**
 * `npm run demo`: the whole story in a throwaway namespace lab. A server gates port 2222, a client enrols and
 * knocks, connects to the service, and a captured knock replayed from another host is refused and recorded.
 */
import { browserKnock } from "./demo-browser.js";
import { sleep, TknockLab } from "./tknock-lab.js";

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write("demo: needs root (it creates network namespaces and an nftables table): run `sudo npm run demo`\n");
    return 1;
  }
  let t: TknockLab | undefined;
  const started = performance.now();
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const result = await fn();
    process.stdout.write(`[${(performance.now() - t0).toFixed(0).padStart(5)} ms] ${what}\n`);
    return result;
  };
  try {
    const lab = await step("lab: namespaces client 198.18.0.1, server 198.18.0.2, other 198.18.0.3; server: `tknock-server init --protect 2222`", () =>
      TknockLab.create({ openSeconds: 10 }),
    );
    t = lab;
    const service = lab.startService(lab.protectPort, "SSH-2.0-tknock-demo greeting: you are in\n");
    await step("server: demo service listening on port 2222", () => sleep(300));
    const { uri, qr } = await step("server: `tknock-server enroll laptop` made a secret; client: `tknock add URI` stored it", () => lab.enrollClient("laptop"));
    process.stdout.write(
      `${qr}\n        the QR code above holds the enrolment URI (secret hidden here):\n        ${uri.replace(/secret=[A-Z2-7]+/, "secret=<hidden>")}\n`,
    );
    await step("server: `tknock-server run` is watching eth0 (tcpdump) behind the nftables gate", () => lab.startDaemon());
    const before = await step("client: connect to 2222 before knocking", () => lab.probe("client", lab.protectPort));
    process.stdout.write(`        -> ${before.state} (no answer: the gate drops it)\n`);

    const cap = await lab.capture("server", `src host ${lab.lab.host("client").ipv4} and dst portrange 10000-59999 and tcp[tcpflags] & tcp-syn != 0`);
    const knock = await step("client: `tknock laptop --wait` knocked the current window's 4 ports", () => lab.client(["laptop", "--wait", "10"]));
    process.stdout.write(`        -> exit ${knock.code}; ${knock.stderr.trim().split("\n").at(-1) ?? ""}\n`);
    const opened = await lab.waitForLog((l) => l.msg === "opened", 5000).catch(() => undefined);
    if (opened)
      process.stdout.write(
        `        server: opened port 2222 for ${String(opened["src"])} (step ${String(opened["step"])}): last knock to open ${String(opened["knockToOpenMs"])} ms, of which nft ${String(opened["firewallMs"])} ms\n`,
      );
    const after = await step("client: connect to 2222 after knocking", () => lab.probe("client", lab.protectPort));
    process.stdout.write(`        -> ${after.state}: ${after.data.trim()}\n`);
    const captured = await cap.stop();
    const ports = [...captured.matchAll(/> [\d.]+\.(\d+): Flags \[S\]/g)].map((m) => Number(m[1]));
    process.stdout.write(`        tcpdump on the path saw the knock: ${ports.join(", ")}\n`);

    await step(`other: replayed the captured knock (${ports.join(" ")}) from 198.18.0.3`, () => lab.sendSyns("other", ports));
    await sleep(500);
    const stolen = await step("other: connect to 2222", () => lab.probe("other", lab.protectPort));
    process.stdout.write(`        -> ${stolen.state}\n`);
    const replays = await step("server: `tknock-server replays --json`", () => lab.replays());
    for (const r of replays) process.stdout.write(`        ${r.kind} from ${r.source}, client ${r.client ?? "?"}, step ${r.step ?? "?"}\n`);
    const browser = await browserKnock(lab, step);
    service.kill();
    const ok =
      before.state === "filtered" &&
      knock.code === 0 &&
      after.state === "open" &&
      stolen.state === "filtered" &&
      replays.some((r) => r.kind === "replay") &&
      browser !== "failed";
    const web = browser === "opened" ? ", the web page's knock opened it too" : "";
    process.stdout.write(ok ? `demo: OK: the knock opened the port${web}, the replay was refused and recorded\n` : "demo: FAILED: see the lines above\n");
    return ok ? 0 : 1;
  } finally {
    if (t) {
      const lab = t;
      await step("lab: torn down (namespaces, tables, processes)", () => lab.destroy());
    }
    process.stdout.write(`total ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
});
