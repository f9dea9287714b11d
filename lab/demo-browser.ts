/**
 * The demo's browser part: the web client (dist/web/index.html) in Debian's chromium inside the client
 * namespace imports a profile from its enrolment link and knocks. Skipped, with the command that installs
 * chromium, when it is missing.
 */
import { CHROMIUM_INSTALL_HINT, chromiumInstalled, launchInNamespace, WEB_PAGE_URL } from "./browser-lab.js";
import type { TknockLab } from "./tknock-lab.js";

type Step = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

export async function browserKnock(lab: TknockLab, step: Step): Promise<"opened" | "skipped" | "failed"> {
  if (!chromiumInstalled()) {
    process.stdout.write(`        (the web client's knock is skipped: ${CHROMIUM_INSTALL_HINT}, then run the demo again)\n`);
    return "skipped";
  }
  const out = await step("server: `tknock-server enroll phone --web-url https://example.org/tknock/` printed the link for the phone's camera", () =>
    lab.serverOk(["enroll", "phone", "--host", "server", "--addr", lab.serverAddr, "--web-url", "https://example.org/tknock/"]),
  );
  const link = out.split("\n").find((l) => l.startsWith("https://")) ?? "";
  const browser = await step("client: Debian's chromium started inside the client namespace (playwright-core)", () =>
    launchInNamespace(lab.lab.host("client").ns, lab.dir),
  );
  try {
    const page = await browser.newPage({ viewport: { width: 360, height: 740 } });
    await step("client: opened dist/web/index.html#otpauth://... from file://: the page imported the profile", async () => {
      await page.goto(`${WEB_PAGE_URL}#${link.slice(link.indexOf("#") + 1)}`);
      await page.getByRole("button", { name: "Knock server", exact: true }).waitFor({ timeout: 10_000 });
    });
    const from = lab.logCount;
    await step('client: clicked "Knock server" in the page', () => page.getByRole("button", { name: "Knock server", exact: true }).click());
    const opened = await lab.waitForLog((l) => l.msg === "opened" && l["client"] === "phone", 10_000, from).catch(() => undefined);
    const card = page.locator('li.profile[data-name="server"]');
    const said = await card.locator('[data-role="result"]').textContent();
    await page
      .locator('[data-role="opened"]')
      .filter({ hasText: /^(Opened|Cannot tell|Port)/ })
      .waitFor({ timeout: 10_000 })
      .catch(() => undefined);
    const probe = await card.locator('[data-role="opened"]').textContent();
    process.stdout.write(`        page: ${said ?? ""}\n        page: ${probe ?? ""}\n`);
    if (opened === undefined) {
      process.stdout.write('        server: no "opened" for the phone\'s knock\n');
      return "failed";
    }
    process.stdout.write(`        server: opened port ${lab.protectPort} for ${String(opened["src"])} (client phone, step ${String(opened["step"])})\n`);
    return "opened";
  } finally {
    await browser.close();
  }
}
