/** The page: enrol (fragment, camera, picture, paste), store, knock, and show what happened. */
import { TknockError } from "../src/errors.js";
import { badPortsIn } from "../src/protocol/bad-ports.js";
import { parseProfileUri, type EnrolledProfile } from "../src/protocol/profile-uri.js";
import { enrolmentUriOf, uriFromFragment } from "../src/protocol/web-link.js";
import { msUntilNextStep, stepAt } from "../src/protocol/window.js";
import { knockProfile, probeOpen, sshCommand } from "./knock.js";
import { decodeImageFile, scanWithCamera } from "./qr.js";
import { runVectors } from "./self-test.js";
import { WebStore, type WebProfile } from "./store.js";

declare const __TKNOCK_DEV__: boolean;

/** After a knock, how long the page looks for the protected port to answer. */
const OPEN_WAIT_SECONDS = 6;

const store = new WebStore();

/** Each profile's last knock and probe lines, kept when the list is drawn again (a profile added meanwhile). */
const lastLines = new Map<string, { result: HTMLElement; opened: HTMLElement }>();

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`page element #${id} is missing`);
  return e as T;
}

function say(message: string, bad = false): void {
  const s = el("status");
  s.textContent = message;
  s.classList.toggle("bad", bad);
}

function messageOf(err: unknown): string {
  return err instanceof TknockError || err instanceof Error ? err.message : String(err);
}

function make<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** Renders the profile list; each card has its own live result line. */
async function render(): Promise<void> {
  const locked = (await store.state()) === "locked";
  el("unlock").hidden = !locked;
  for (const id of ["profiles-section", "add-section", "settings"]) el(id).hidden = locked;
  if (locked) {
    el<HTMLInputElement>("unlock-pass").focus();
    return;
  }
  el("protection-state").textContent = (await store.isProtected())
    ? "Profiles are protected by a passphrase (PBKDF2 and AES-GCM)."
    : "Profiles are stored without a passphrase: anyone with this browser profile can read them.";
  const list = el("profiles");
  const profiles = await store.list();
  el("no-profiles").hidden = profiles.length > 0;
  list.replaceChildren(...profiles.map(card));
  tick();
}

function card(entry: WebProfile): HTMLLIElement {
  let profile: EnrolledProfile | undefined;
  let problem = "";
  try {
    profile = parseProfileUri(entry.uri);
  } catch (err) {
    problem = messageOf(err);
  }
  const li = make("li", { className: "profile" });
  li.dataset["name"] = entry.name;
  const titleId = `p-${entry.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  li.setAttribute("aria-labelledby", titleId);
  li.append(make("h3", { id: titleId }, entry.name));
  if (profile === undefined) {
    li.append(make("p", { className: "result bad" }, `cannot use this profile: ${problem}`));
  } else {
    const open = profile.open[0] ?? 22;
    li.append(make("p", {}, `${profile.knocks} ${profile.proto} knocks to ${entry.addr}; opens ${profile.open.join(", ")}`));
    const countdown = make("p", { className: "countdown" });
    countdown.dataset["period"] = String(profile.periodSeconds);
    li.append(countdown);
    // An SPA-only profile has no sequence the server accepts, and an SPA packet is a UDP datagram.
    const spaOnly = profile.mode === "spa";
    if (profile.proto !== "tcp" || spaOnly)
      li.append(
        make(
          "p",
          { className: "result bad" },
          spaOnly
            ? "this profile knocks with SPA (one UDP packet), which a browser cannot send: use the tknock CLI"
            : "this profile knocks over UDP, which a browser cannot send: use the tknock CLI",
        ),
      );
    const knock = make("button", { type: "button", className: "knock" }, `Knock ${entry.name}`);
    knock.disabled = profile.proto !== "tcp" || spaOnly;
    const result = make("p", { className: "result" });
    result.setAttribute("role", "status");
    result.setAttribute("aria-live", "polite");
    result.dataset["role"] = "result";
    const opened = make("p", { className: "result" });
    opened.dataset["role"] = "opened";
    const kept = lastLines.get(entry.name);
    if (kept !== undefined) {
      for (const [to, from] of [
        [result, kept.result],
        [opened, kept.opened],
      ] as const) {
        to.textContent = from.textContent;
        to.className = from.className;
      }
    }
    lastLines.set(entry.name, { result, opened });
    knock.addEventListener("click", () => void doKnock(entry.name, entry.addr, open, knock, result, opened));
    li.append(knock, result, opened);
    const ssh = sshCommand(entry.addr, open);
    li.append(make("p", {}, "ssh: ", make("code", {}, ssh.command), " ", make("a", { href: ssh.url }, `Open ${ssh.url}`)));
    const copy = make("button", { type: "button" }, `Copy ssh command for ${entry.name}`);
    copy.addEventListener("click", () => {
      navigator.clipboard.writeText(ssh.command).then(
        () => say(`copied: ${ssh.command}`),
        () => say(`cannot copy here: select the command and copy it (${ssh.command})`, true),
      );
    });
    li.append(copy);
    const risky = badPortsIn(profile.portMin, profile.portMax).filter((p) => !profile.exclude.includes(p));
    if (risky.length > 0) {
      li.append(
        make(
          "p",
          {},
          `Note: this profile was enrolled without excluding port${risky.length > 1 ? "s" : ""} ${risky.join(", ")}, which browsers refuse; a window whose sequence holds one cannot be knocked from here (re-enrol with a current tknock-server).`,
        ),
      );
    }
  }
  const del = make("button", { type: "button", className: "danger" }, `Delete ${entry.name}`);
  del.addEventListener("click", () => {
    if (!confirm(`Delete profile ${entry.name} from this browser? Its secret is gone for good unless you have a backup.`)) return;
    void store
      .update((ps) => ({ profiles: ps.filter((p) => p.name !== entry.name), result: undefined }))
      .then(() => say(`deleted ${entry.name}`))
      .then(render)
      .catch((err: unknown) => say(messageOf(err), true));
  });
  li.append(del);
  return li;
}

async function doKnock(name: string, addr: string, openPort: number, button: HTMLButtonElement, result: HTMLElement, opened: HTMLElement): Promise<void> {
  button.disabled = true;
  opened.textContent = "";
  opened.className = "result";
  result.className = "result";
  try {
    const outcome = await knockProfile(store, name);
    if (outcome.kind === "wait") {
      const seconds = Math.ceil((outcome.untilMs - Date.now()) / 1000);
      result.textContent = `Steps ${outcome.step} and ${outcome.step + 1} (this window and the next) are used: knock again in ${seconds} s.`;
      result.classList.add("bad");
      return;
    }
    if (outcome.kind === "bad-port") {
      result.textContent = `Not sent: step ${outcome.step}'s sequence holds port ${outcome.port}, which browsers refuse to connect to (a Fetch "bad port"). Knock with the tknock CLI, wait for the next window, or re-enrol with a current tknock-server (it leaves these ports out).`;
      result.classList.add("bad");
      return;
    }
    const which =
      outcome.reason === "current" ? "this window" : outcome.reason === "next" ? "the next window: this one's was used" : "clock behind the last knock";
    result.dataset["step"] = String(outcome.step);
    result.textContent = `Knocked ${addr} with step ${outcome.step} (${which}): ${outcome.ports.length} knocks.`;
    result.classList.add("ok");
    opened.textContent = `Looking at port ${openPort}...`;
    const probe = await probeOpen(addr, openPort, OPEN_WAIT_SECONDS);
    opened.dataset["state"] = probe.kind;
    if (probe.kind === "open") {
      opened.textContent = `Opened: port ${openPort} answers (after ${Math.round(probe.afterMs)} ms).`;
      opened.classList.add("ok");
    } else if (probe.kind === "answered") {
      opened.textContent = `Opened, most likely: port ${openPort} answered after ${Math.round(probe.afterMs)} ms, but not over HTTPS, so the page cannot tell a service such as ssh from a refusal or a network error; ssh will tell.`;
      opened.classList.add("ok");
    } else if (probe.kind === "cannot-tell") {
      opened.textContent = `Cannot tell whether port ${openPort} opened: ${probe.why}.`;
    } else {
      opened.textContent = `Port ${openPort} did not answer within ${probe.seconds} s: check this device's clock, the address (behind NAT the server sees your public one), and that tknock-server runs. A service that drops unknown traffic also looks like this.`;
      opened.classList.add("bad");
    }
  } catch (err) {
    result.textContent = messageOf(err);
    result.classList.add("bad");
  } finally {
    button.disabled = false;
  }
}

function tick(): void {
  const now = Date.now();
  for (const c of document.querySelectorAll<HTMLElement>(".countdown")) {
    const period = Number(c.dataset["period"]);
    c.textContent = `Window ${stepAt(now, period)}: ${Math.ceil(msUntilNextStep(now, period) / 1000)} s left`;
  }
}

/** Adds a profile from a URI or link; the name defaults to the URI's host, made unique if taken by another profile. */
async function importText(text: string, wanted: string): Promise<void> {
  const uri = enrolmentUriOf(text);
  const profile = parseProfileUri(uri);
  const addr = (profile.addr ?? profile.host).replace(/^\[(.*)\]$/, "$1");
  const base = wanted.trim() || profile.host.replace(/^\[(.*)\]$/, "$1");
  const name = await store.update((profiles) => {
    const same = profiles.find((p) => p.uri === uri);
    if (same !== undefined) return { profiles, result: { name: same.name, added: false } };
    let n = base;
    if (wanted.trim() !== "" && profiles.some((p) => p.name === n)) throw new Error(`a profile named ${n} exists: delete it first or choose another name`);
    for (let i = 2; profiles.some((p) => p.name === n); i++) n = `${base}-${i}`;
    return { profiles: [...profiles, { name: n, uri, addr }], result: { name: n, added: true } };
  });
  // The list first, then the status line: a status saying "added" means the profile is on the page.
  await render();
  say(name.added ? `added ${name.name}: ${profile.proto} knocks to ${addr}, opens ${profile.open.join(",")}` : `already stored as ${name.name}`);
}

/** A `#otpauth://...` fragment: taken out of the address bar and this history entry before anything else. */
let pendingLink: string | undefined;
function takeFragment(): void {
  if (location.hash.length <= 1) return;
  pendingLink = location.hash.slice(1);
  history.replaceState(null, "", location.href.slice(0, location.href.indexOf("#")));
}

async function importPending(): Promise<void> {
  const link = pendingLink;
  if (link === undefined || (await store.state()) === "locked") return;
  pendingLink = undefined;
  const uri = uriFromFragment(link);
  if (uri === undefined) {
    say("the link holds no enrolment URI after #: scan the QR code tknock-server enroll printed", true);
    return;
  }
  await importText(uri, "").catch((err: unknown) => say(`cannot import the link: ${messageOf(err)}`, true));
}

function wire(): void {
  el("unlock-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = el<HTMLInputElement>("unlock-pass");
    say("unlocking...");
    store
      .unlock(input.value)
      .then(async () => {
        input.value = "";
        await render();
        say("unlocked");
        await importPending();
      })
      .catch((err: unknown) => say(messageOf(err), true));
  });
  el("paste-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const area = el<HTMLTextAreaElement>("paste-uri");
    importText(area.value, el<HTMLInputElement>("add-name").value)
      .then(() => {
        area.value = "";
      })
      .catch((err: unknown) => say(messageOf(err), true));
  });
  el<HTMLInputElement>("qr-file").addEventListener("change", (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    if (file === undefined) return;
    decodeImageFile(file)
      .then((text) => {
        if (text === undefined) throw new Error("no QR code found in the picture: crop it to the code or take a sharper picture");
        return importText(text, el<HTMLInputElement>("add-name").value);
      })
      .catch((err: unknown) => say(messageOf(err), true))
      .finally(() => {
        input.value = "";
      });
  });
  let scanning: AbortController | undefined;
  const video = el<HTMLVideoElement>("camera");
  const stop = el<HTMLButtonElement>("scan-stop");
  el("scan").addEventListener("click", () => {
    scanning?.abort();
    const current = new AbortController();
    scanning = current;
    video.hidden = false;
    stop.hidden = false;
    say("point the camera at the enrolment QR code");
    const accept = (t: string): boolean => enrolmentUriOf(t).toLowerCase().startsWith("otpauth://");
    scanWithCamera(video, accept, current.signal)
      .then((text) => importText(text, el<HTMLInputElement>("add-name").value))
      .catch((err: unknown) => {
        if (!current.signal.aborted) say(messageOf(err), true);
      })
      .finally(() => {
        video.hidden = true;
        stop.hidden = true;
      });
  });
  stop.addEventListener("click", () => {
    scanning?.abort();
    say("camera stopped");
  });
  el("pass-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = el<HTMLInputElement>("new-pass");
    say(input.value === "" ? "removing the passphrase..." : "protecting the profiles...");
    store
      .setPassphrase(input.value)
      .then(async () => {
        say(input.value === "" ? "passphrase removed: profiles are stored in the clear" : "profiles protected by the passphrase");
        input.value = "";
        await render();
      })
      .catch((err: unknown) => say(messageOf(err), true));
  });
  el("lock").addEventListener("click", () => {
    void store.isProtected().then(async (p) => {
      if (!p) {
        say("set a passphrase first: without one there is nothing to lock", true);
        return;
      }
      store.lock();
      await render();
    });
  });
  el("export").addEventListener("click", () => {
    store
      .exportBackup()
      .then(async (text) => {
        const a = make("a", { href: URL.createObjectURL(new Blob([text], { type: "application/json" })), download: "tknock-web-backup.json" });
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
        say(
          (await store.isProtected()) ? "backup written (protected by the passphrase)" : "backup written: it holds the secrets in the clear, keep it private",
        );
      })
      .catch((err: unknown) => say(messageOf(err), true));
  });
  el<HTMLInputElement>("import-file").addEventListener("change", (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    if (file === undefined) return;
    file
      .text()
      .then((text) => store.importBackup(text, el<HTMLInputElement>("import-pass").value))
      .then(async (names) => {
        await render();
        say(`imported ${names.length} profile${names.length === 1 ? "" : "s"}: ${names.join(", ")}`);
      })
      .catch((err: unknown) => say(messageOf(err), true))
      .finally(() => {
        input.value = "";
      });
  });
  window.addEventListener("hashchange", () => {
    takeFragment();
    void importPending();
  });
}

function registerServiceWorker(): void {
  const offline = el("offline");
  if (location.protocol === "file:") {
    offline.textContent = "Opened from a file: works here, but cannot be installed for offline use (serve it over https for that).";
    return;
  }
  if (!("serviceWorker" in navigator)) {
    offline.textContent = "This browser has no service workers: the page works while online only.";
    return;
  }
  navigator.serviceWorker.register("sw.js").then(
    () => (offline.textContent = "Available offline; add it to your home screen."),
    (err: unknown) => (offline.textContent = `Offline use unavailable: ${messageOf(err)}`),
  );
}

/** The page's own check, run by the browser tests and on load in development builds. */
(globalThis as { tknockSelfTest?: () => Promise<unknown> }).tknockSelfTest = runVectors;

takeFragment();
wire();
registerServiceWorker();
setInterval(tick, 1000);
void render()
  .then(importPending)
  .catch((err: unknown) => say(messageOf(err), true));
if (__TKNOCK_DEV__) {
  void runVectors().then((r) => {
    if (r.failed.length > 0) say(`protocol vectors FAILED in this browser: ${r.failed.join("; ")}`, true);
    else console.info(`tknock development build: the ${r.passed.length} protocol vectors pass in this browser`);
  });
}
