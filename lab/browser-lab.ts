/**
 * Debian's chromium, driven by playwright-core, inside a lab host's network namespace: the web client's knocks
 * leave from that host's address. Shared by the browser test (test/e2e/web-client.test.ts) and the demo.
 */
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser } from "playwright-core";
import { REPO_ROOT } from "./tknock-lab.js";

export const CHROMIUM = "/usr/bin/chromium";
/** The built page (npm run build). */
export const WEB_PAGE = join(REPO_ROOT, "dist/web/index.html");
export const WEB_PAGE_URL = pathToFileURL(WEB_PAGE).href;

/**
 * Root needs --no-sandbox; the rest keep chromium from calling home (updates, sync, field trials), which a
 * closed network answers with refusals and which would add packets to the lab's captures.
 */
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
] as const;

export function chromiumInstalled(): boolean {
  return existsSync(CHROMIUM);
}

export const CHROMIUM_INSTALL_HINT = "install Debian's chromium: apt-get install -y --no-install-recommends chromium";

/**
 * Starts chromium in namespace `ns` through a small wrapper (`ip netns exec NS chromium ARGS`): playwright talks
 * to it over the pipes it inherits, which the exec chain keeps.
 */
export async function launchInNamespace(ns: string, dir: string, extraArgs: readonly string[] = []): Promise<Browser> {
  if (!chromiumInstalled()) throw new Error(`no ${CHROMIUM}: ${CHROMIUM_INSTALL_HINT}`);
  const wrapper = join(dir, `chromium-in-${ns}`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: wrapper, args: [...CHROMIUM_FLAGS, ...extraArgs], timeout: 30_000 });
}
