/**
 * The web client (dist/web/index.html) in Debian's chromium, driven by playwright-core, running inside the lab's
 * client namespace: the page's fetch() knocks are real SYNs from 198.18.0.1 to the real `tknock-server run`.
 * Hosts: client 198.18.0.1, server 198.18.0.2, other 198.18.0.3.
 */
import type { ChildProcess } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { launchInNamespace, WEB_PAGE_URL } from "../../lab/browser-lab.js";
import { REPO_ROOT, sleep, TknockLab } from "../../lab/tknock-lab.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { parseProfileUri } from "../../src/protocol/profile-uri.js";
import { VECTORS } from "../vectors/v1.js";
import { describeAsRoot } from "../support/root.js";
import { pngToY4m } from "../support/y4m.js";

const WEB_URL = "https://tknock.example/web/";

describeAsRoot("web client: chromium in the client namespace knocks the real server", () => {
  let t: TknockLab;
  let service: ChildProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let link: string;
  let uri: string;
  let qrPng: string;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: 30 });
    service = t.startService(t.protectPort);
    const out = await t.serverOk(["enroll", "phone", "--host", "server", "--addr", t.serverAddr, "--web-url", WEB_URL]);
    uri = out.split("\n").find((l) => l.startsWith("otpauth://")) ?? "";
    link = out.split("\n").find((l) => l.startsWith(WEB_URL)) ?? "";
    qrPng = join(t.dir, "tablet.png");
    await t.serverOk(["enroll", "tablet", "--host", "server", "--addr", t.serverAddr, "--web-url", WEB_URL, "--qr-png", qrPng]);
    await t.startDaemon();
    browser = await launchInNamespace(t.lab.host("client").ns, t.dir);
    context = await browser.newContext({ viewport: { width: 360, height: 740 } });
    page = await context.newPage();
    page.on("console", (m) => {
      if (m.text().includes("Content Security Policy")) cspViolations.push(m.text());
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    service?.kill();
    await t?.destroy();
  });

  const knockButton = (name: string) => page.getByRole("button", { name: `Knock ${name}`, exact: true });
  const card = (name: string) => page.locator(`li.profile[data-name="${name}"]`);

  /** Clicks "Knock NAME" and returns the step the page says it used. */
  async function knockFromPage(name: string): Promise<number> {
    const result = card(name).locator('[data-role="result"]');
    await result.evaluate((e) => (e.textContent = ""));
    await knockButton(name).click();
    await expect.poll(() => result.textContent(), { timeout: 10_000 }).toMatch(/^Knocked|^Not sent|are used/);
    const text = (await result.textContent()) ?? "";
    const m = /with step (\d+)/.exec(text);
    if (m === null) throw new Error(`the page did not knock: ${text}`);
    return Number(m[1]);
  }

  /** Keeps two knocks in one window: waits out the window's last seconds. */
  async function awayFromWindowEdge(periodSeconds: number, marginMs: number): Promise<void> {
    const leftMs = periodSeconds * 1000 - (Date.now() % (periodSeconds * 1000));
    if (leftMs < marginMs) await sleep(leftMs + 100);
  }

  it("when the page is opened from file:// with the enrolment link then it imports the profile and drops the fragment from the address", async () => {
    expect(link).toBe(`${WEB_URL}#${uri}`);
    await page.goto(`${WEB_PAGE_URL}#${link.slice(link.indexOf("#") + 1)}`);
    await expect.poll(() => knockButton("server").count(), { timeout: 10_000 }).toBe(1);
    expect(page.url()).toBe(WEB_PAGE_URL);
    expect(await page.evaluate("location.hash + String(history.state)")).toBe("null");
    expect(await page.locator("#status").textContent()).toMatch(/^added server: tcp knocks to 198\.18\.0\.2, opens 2222/);
  });

  it("when the page runs docs/protocol.md's vectors with WebCrypto then every one passes", async () => {
    const r = await page.evaluate(() => (globalThis as unknown as { tknockSelfTest: () => Promise<{ passed: string[]; failed: string[] }> }).tknockSelfTest());
    expect(r.failed).toEqual([]);
    expect(r.passed).toHaveLength(VECTORS.length);
  });

  let firstStep = 0;
  let sent: number[] = [];

  it("when Knock is clicked then the port opens for the client's address only, and the page says opened", async () => {
    await awayFromWindowEdge(30, 8000);
    const from = t.logCount;
    const cap = await t.capture(
      "server",
      `src host ${t.lab.host("client").ipv4} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst portrange 10000-59999`,
    );
    firstStep = await knockFromPage("server");
    const opened = await t.waitForLog((l) => l.msg === "opened" && l["client"] === "phone", 10_000, from);
    expect(opened).toMatchObject({ src: t.lab.host("client").ipv4, step: firstStep, ports: [t.protectPort] });
    await expect
      .poll(() => card("server").locator('[data-role="opened"]').textContent(), { timeout: 10_000 })
      .toMatch(/^Opened, most likely: port 2222 answered after \d+ ms, but not over HTTPS/);
    // What left the browser: the step's ports in order, one SYN each, none repeated after the kernel's first
    // retransmission time (1 s).
    await sleep(1500);
    sent = [...(await cap.stop()).matchAll(/> [\d.]+\.(\d+): Flags \[S\]/g)].map((m) => Number(m[1]));
    expect(sent).toEqual(deriveSequence(parseProfileUri(uri), firstStep));
    expect((await t.probe("client", t.protectPort)).state).toBe("open");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
    // The browser's second connection per knock must not read as a replay of the client's own knock.
    expect((await t.replays()).filter((r) => r.source === t.lab.host("client").ipv4)).toEqual([]);
  });

  it("when Knock is clicked again in the same window then the page uses step T+1 and the server accepts it", async () => {
    const from = t.logCount;
    const step = await knockFromPage("server");
    expect(step).toBe(firstStep + 1);
    expect(await t.waitForLog((l) => l.msg === "opened" && l["client"] === "phone", 10_000, from)).toMatchObject({ step: firstStep + 1 });
    await expect.poll(() => card("server").locator('[data-role="opened"]').textContent(), { timeout: 10_000 }).toMatch(/^Opened/);
    // The README's picture (docs/web-client.png): TKNOCK_UPDATE_SCREENSHOT=1 refreshes it.
    await page.evaluate("window.scrollTo(0, 0)");
    const shot = join(t.dir, "web-client.png");
    await page.screenshot({ path: shot });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
    if (process.env["TKNOCK_UPDATE_SCREENSHOT"] === "1") copyFileSync(shot, join(REPO_ROOT, "docs/web-client.png"));
  });

  it("when the page's knock is replayed from the other host then it is refused and recorded, and the port stays closed there", async () => {
    await t.sendSyns("other", sent);
    await expect
      .poll(async () => (await t.replays()).find((r) => r.source === t.lab.host("other").ipv4), { timeout: 5000 })
      .toMatchObject({ kind: "replay", client: "phone", step: firstStep });
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  });

  it("when a QR code picture from `enroll --qr-png` is chosen then the page imports the profile it links to", async () => {
    await page.getByLabel("Profile name (optional)").fill("tablet");
    await page.getByLabel("QR code picture").setInputFiles(qrPng);
    await expect.poll(() => knockButton("tablet").count(), { timeout: 10_000 }).toBe(1);
    expect(await page.locator("#status").textContent()).toMatch(/^added tablet: tcp knocks to 198\.18\.0\.2/);
    // The list was drawn again: the other profile still shows its last knock.
    expect(await card("server").locator('[data-role="result"]').textContent()).toMatch(/^Knocked 198\.18\.0\.2 with step/);
  });

  it("when a profile's sequence holds a port browsers refuse then the page does not knock, says why, and spends no step", async () => {
    const bad = uri
      .replace(/ports=\d+-\d+/, "ports=10080-10081")
      .replace(/exclude=[^&]*/, "exclude=")
      .replace(/knocks=\d+/, "knocks=2");
    await page.getByLabel("Profile name (optional)").fill("badport");
    await page.getByLabel("Enrolment URI or link").fill(bad);
    await page.getByRole("button", { name: "Add profile" }).click();
    await expect.poll(() => knockButton("badport").count(), { timeout: 10_000 }).toBe(1);
    for (let i = 0; i < 3; i++) {
      await knockButton("badport").click();
      await expect
        .poll(() => card("badport").locator('[data-role="result"]').textContent(), { timeout: 5000 })
        .toMatch(/holds port 10080, which browsers refuse/);
    }
  });

  it("when the page is 360 px wide then nothing scrolls sideways and every control has a name", async () => {
    await page.getByLabel("Profile name (optional)").fill("");
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(360);
    // Runs in the page (this file has no DOM types): controls with no text, no label and no aria-label.
    const unnamed = await page.evaluate(`[...document.querySelectorAll("button, input, textarea, a")]
      .filter((e) => !e.hidden && e.innerText.trim() === "" && document.querySelector('label[for="' + e.id + '"]') === null && !e.getAttribute("aria-label"))
      .map((e) => e.outerHTML.slice(0, 60))`);
    expect(unnamed).toEqual([]);
    // The page's own script and style ran under its policy, and nothing it did was blocked.
    expect(cspViolations).toEqual([]);
  });
  it("when a passphrase is set then the store and the backup hold no secret, a reload asks for it, and the backup imports elsewhere", async () => {
    const secret = /secret=([A-Z2-7]+)/.exec(uri)?.[1] ?? "";
    expect(secret).not.toBe("");
    const storedText = `new Promise((resolve) => { const r = indexedDB.open("tknock"); r.onsuccess = () => {
      const g = r.result.transaction("state").objectStore("state").get("store"); g.onsuccess = () => { resolve(JSON.stringify(g.result)); r.result.close(); }; }; })`;
    expect(await page.evaluate(storedText)).toContain(secret);

    await page.getByLabel("New passphrase (leave empty to remove it)").fill("correct horse battery");
    await page.getByRole("button", { name: "Set passphrase" }).click();
    await expect.poll(() => page.locator("#status").textContent(), { timeout: 10_000 }).toBe("profiles protected by the passphrase");
    expect(await page.evaluate(storedText)).not.toContain(secret);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export backup" }).click()]);
    const backup = join(t.dir, "backup.json");
    await download.saveAs(backup);
    expect(readFileSync(backup, "utf8")).toContain('"sealed"');
    expect(readFileSync(backup, "utf8")).not.toContain(secret);

    await page.reload();
    await page.getByRole("button", { name: "Unlock" }).waitFor();
    expect(await knockButton("server").count()).toBe(0);
    await page.getByLabel("Passphrase", { exact: true }).fill("wrong");
    await page.getByRole("button", { name: "Unlock" }).click();
    await expect.poll(() => page.locator("#status").textContent(), { timeout: 10_000 }).toMatch(/^wrong passphrase/);
    await page.getByLabel("Passphrase", { exact: true }).fill("correct horse battery");
    await page.getByRole("button", { name: "Unlock" }).click();
    await expect.poll(() => knockButton("server").count(), { timeout: 10_000 }).toBe(1);

    const other = await browser.newContext({ viewport: { width: 360, height: 740 } });
    try {
      const fresh = await other.newPage();
      await fresh.goto(WEB_PAGE_URL);
      await fresh.getByLabel("Backup passphrase (for a protected backup)").fill("correct horse battery");
      await fresh.getByLabel("Import backup file").setInputFiles(backup);
      await expect.poll(() => fresh.locator("#status").textContent(), { timeout: 10_000 }).toMatch(/^imported 3 profiles: /);
      // The status line comes before the list is drawn again: wait for the button, not just the status.
      await expect.poll(() => fresh.getByRole("button", { name: "Knock server", exact: true }).count(), { timeout: 10_000 }).toBe(1);
    } finally {
      await other.close();
    }
  });

  it("when Delete is confirmed then the profile is gone from the page and the store", async () => {
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Delete badport" }).click();
    await expect.poll(() => knockButton("badport").count(), { timeout: 10_000 }).toBe(0);
    await page.reload();
    await page.getByLabel("Passphrase", { exact: true }).fill("correct horse battery");
    await page.getByRole("button", { name: "Unlock" }).click();
    await expect.poll(() => knockButton("server").count(), { timeout: 10_000 }).toBe(1);
    expect(await knockButton("badport").count()).toBe(0);
  });
  it("when the page is served from http://localhost then its service worker keeps it working offline", async () => {
    // A static server in the client namespace: the page's own host, as a user's https host would be.
    const server = t.lab.spawn("client", ["node", join(REPO_ROOT, "test/support/static-server.mjs"), join(REPO_ROOT, "dist/web"), "8765"]);
    const other = await browser.newContext();
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout?.once("data", () => resolve());
        server.once("exit", (code) => reject(new Error(`static server exited ${code}`)));
      });
      const p = await other.newPage();
      await p.goto("http://localhost:8765/");
      await expect.poll(() => p.locator("#offline").textContent(), { timeout: 10_000 }).toBe("Available offline; add it to your home screen.");
      await p.evaluate("navigator.serviceWorker.ready");
      server.kill();
      await other.setOffline(true);
      await p.reload();
      expect(await p.getByRole("heading", { name: "tknock", level: 1 }).count()).toBe(1);
      expect(await p.getByRole("button", { name: "Add profile" }).count()).toBe(1);
    } finally {
      server.kill();
      await other.close();
    }
  });
  it("when the camera sees the enrolment QR code then the page imports the profile it links to", async () => {
    // Chromium's fake camera plays a picture of the code; a picture without any would never resolve.
    const video = join(t.dir, "camera.y4m");
    writeFileSync(video, pngToY4m(readFileSync(qrPng)));
    const camBrowser = await launchInNamespace(t.lab.host("client").ns, t.dir, [
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${video}`,
    ]);
    try {
      const p = await camBrowser.newPage({ viewport: { width: 360, height: 740 } });
      await p.goto(WEB_PAGE_URL);
      await p.getByLabel("Profile name (optional)").fill("camera");
      await p.getByRole("button", { name: "Scan QR code with camera" }).click();
      await expect.poll(() => p.getByRole("button", { name: "Knock camera", exact: true }).count(), { timeout: 15_000 }).toBe(1);
      expect(await p.locator("#status").textContent()).toMatch(/^added camera: tcp knocks to 198\.18\.0\.2/);
      expect(await p.locator("#camera").isHidden()).toBe(true);
    } finally {
      await camBrowser.close();
    }
  });
});
