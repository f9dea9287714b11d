import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProfileStore, storeDirFrom } from "../../client/store.js";
import { decodeSecret, defaultProfileFields, formatProfileUri } from "../../src/protocol/profile-uri.js";
import { rejectionCodeOf } from "../support/error-code.js";

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
function uriFor(host: string, client = "alice"): string {
  return formatProfileUri({ client, host, open: [22], secret: decodeSecret(SECRET), ...defaultProfileFields([22]) });
}

describe("profile store", () => {
  let root: string;
  let dir: string;
  let warnings: string[];
  const open = (): ProfileStore => ProfileStore.open({ dir, warn: (l) => warnings.push(l) });

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "tknock-store-"));
    dir = join(root, "home");
    warnings = [];
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("when a profile is added then the file is 0600 in a 0700 folder and reads back", async () => {
    const store = open();
    await store.add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2" }, false);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const p = open().get("srv");
    expect(p?.addr).toBe("198.18.0.2");
    expect(p?.profile.host).toBe("srv.example");
    expect(warnings).toEqual([]);
  });

  it("when the file was made readable by others then opening warns with the chmod fix and the next write repairs it", async () => {
    const store = open();
    await store.add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2" }, false);
    chmodSync(store.path, 0o644);
    chmodSync(dir, 0o755);
    const again = open();
    expect(warnings.join("\n")).toContain(`chmod 600 ${store.path}`);
    expect(warnings.join("\n")).toContain(`chmod 700 ${dir}`);
    await again.recordStep("srv", 5);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it("when the store lives in a shared sticky folder then that folder's mode is left alone", async () => {
    chmodSync(root, 0o1777);
    dir = root;
    await open().add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2" }, false);
    expect(statSync(root).mode & 0o7777).toBe(0o1777);
  });

  it("when a name is taken then add is refused, and --force replaces it keeping the last step of the same URI", async () => {
    const store = open();
    const uri = uriFor("srv.example");
    await store.add("srv", { uri, addr: "198.18.0.2" }, false);
    await store.recordStep("srv", 42);
    expect(await rejectionCodeOf(() => store.add("srv", { uri, addr: "198.18.0.3" }, false))).toBe("TKNOCK_DUPLICATE_NAME");
    await store.add("srv", { uri, addr: "198.18.0.3" }, true);
    expect(store.get("srv")).toMatchObject({ addr: "198.18.0.3", lastStepUsed: 42 });
  });

  it("when a name starts with a dash or holds a slash then it is refused", async () => {
    const store = open();
    for (const name of ["-x", "a/b", ""]) {
      expect(await rejectionCodeOf(() => store.add(name, { uri: uriFor("h"), addr: "h" }, false))).toBe("TKNOCK_BAD_NAME");
    }
  });

  it("when looking up by host or address then the one matching profile is found, and two matches are ambiguous", async () => {
    const store = open();
    await store.add("a", { uri: uriFor("a.example"), addr: "198.18.0.2" }, false);
    await store.add("b", { uri: uriFor("b.example"), addr: "198.18.0.3" }, false);
    expect(store.find("A.EXAMPLE").name).toBe("a");
    expect(store.find("198.18.0.3").name).toBe("b");
    await store.add("v6", { uri: uriFor("fd18:18::2"), addr: "fd18:18::2" }, false);
    expect(store.find("[fd18:18::2]").name).toBe("v6");
    expect(await rejectionCodeOf(() => store.find("c.example"))).toBe("TKNOCK_NO_PROFILE");
    await store.add("a2", { uri: uriFor("a.example", "bob"), addr: "198.18.0.4" }, false);
    expect(await rejectionCodeOf(() => store.find("a.example"))).toBe("TKNOCK_AMBIGUOUS_PROFILE");
  });

  it("when a profile is looked up by the short host name then the one profile of that name is found; two are listed", async () => {
    const store = open();
    await store.add("198.19.60.2", { uri: uriFor("198.19.60.2"), addr: "198.19.60.2" }, false);
    await store.add("gw.example.org", { uri: uriFor("gw.example.org"), addr: "gw.example.org" }, false);
    expect(store.find("gw").name).toBe("gw.example.org");
    expect(store.find("GW").name).toBe("gw.example.org");
    expect(await rejectionCodeOf(() => store.find("198"))).toBe("TKNOCK_NO_PROFILE");
    await store.add("gw2", { uri: uriFor("gw.example.net"), addr: "198.19.60.3" }, false);
    expect(await rejectionCodeOf(() => store.find("gw"))).toBe("TKNOCK_AMBIGUOUS_PROFILE");
    const err = (() => {
      try {
        store.find("gw");
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })();
    expect(err).toContain("gw.example.org");
    expect(err).toContain("gw2");
    // A full name still finds its own profile although the short name is ambiguous.
    expect(store.find("gw.example.net").name).toBe("gw2");
  });

  it("when steps are recorded then the last step only rises, a reset sets it, and avoided steps are kept apart", async () => {
    const store = open();
    await store.add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2" }, false);
    await store.recordStep("srv", 100);
    await store.recordStep("srv", 99);
    expect(store.get("srv")?.lastStepUsed).toBe(100);
    await store.recordStep("srv", 104, "avoid");
    await store.recordStep("srv", 90, "reset");
    expect(store.get("srv")).toMatchObject({ lastStepUsed: 90, avoidSteps: [104] });
    await store.recordStep("srv", 200, "avoid");
    expect(store.get("srv")?.avoidSteps).toEqual([200]); // far older ones are dropped
  });

  it("when a time offset is set then it is stored with the profile, and 0 removes it", async () => {
    const store = open();
    await store.add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2", timeOffsetSeconds: 40 }, false);
    expect(store.get("srv")?.timeOffsetSeconds).toBe(40);
    await store.setTimeOffset("srv", -75);
    expect(store.get("srv")?.timeOffsetSeconds).toBe(-75);
    await store.setTimeOffset("srv", 0);
    expect(store.get("srv")?.timeOffsetSeconds).toBeUndefined();
  });

  it("when a step is recorded then it is on disk at once", async () => {
    const store = open();
    await store.add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2" }, false);
    await store.recordStep("srv", 56_666_666);
    const file = JSON.parse(readFileSync(store.path, "utf8")) as { profiles: Record<string, { lastStepUsed?: number }> };
    expect(file.profiles["srv"]?.lastStepUsed).toBe(56_666_666);
  });

  it("when the file is not JSON or has a bad entry then reading fails with TKNOCK_STORE_INVALID and nothing is erased", async () => {
    const store = open();
    writeFileSync(store.path, "{ not json", { mode: 0o600 });
    expect(await rejectionCodeOf(() => open().list())).toBe("TKNOCK_STORE_INVALID");
    expect(readFileSync(store.path, "utf8")).toBe("{ not json");
    writeFileSync(store.path, JSON.stringify({ version: 1, profiles: { x: { uri: "otpauth://totp/nope", addr: "h" } } }));
    expect(await rejectionCodeOf(() => open().list())).toBe("TKNOCK_STORE_INVALID");
    writeFileSync(store.path, JSON.stringify({ version: 1, profiles: { x: { uri: uriFor("h"), addr: "h", lastStepUsed: -1 } } }));
    expect(await rejectionCodeOf(() => open().list())).toBe("TKNOCK_STORE_INVALID");
  });

  it("when removing then the profile is gone, and removing it again is TKNOCK_NO_PROFILE", async () => {
    const store = open();
    await store.add("srv", { uri: uriFor("srv.example"), addr: "198.18.0.2" }, false);
    await store.remove("srv");
    expect(store.names()).toEqual([]);
    expect(await rejectionCodeOf(() => store.remove("srv"))).toBe("TKNOCK_NO_PROFILE");
  });

  it("when --store, TKNOCK_HOME or neither is given then the folder follows that order", async () => {
    expect(storeDirFrom("/a", { TKNOCK_HOME: "/b" })).toBe("/a");
    expect(storeDirFrom(undefined, { TKNOCK_HOME: "/b" })).toBe("/b");
    expect(storeDirFrom(undefined, { XDG_CONFIG_HOME: "/x", HOME: "/h" })).toBe("/x/tknock");
    expect(storeDirFrom(undefined, { HOME: "/h" })).toBe("/h/.config/tknock");
  });
});
