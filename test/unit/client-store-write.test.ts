import { chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProfileStore } from "../../client/store.js";
import { serializeStore } from "../../client/store-write.js";
import { decodeSecret, defaultProfileFields, formatProfileUri } from "../../src/protocol/profile-uri.js";
import { isRoot } from "../support/root.js";

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
const uri = formatProfileUri({ client: "alice", host: "srv.example", open: [22], secret: decodeSecret(SECRET), ...defaultProfileFields([22]) });

describe("the step record's write (without conf)", () => {
  let root: string;
  let dir: string;
  const open = (): ProfileStore => ProfileStore.open({ dir, warn: () => {} });

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "tknock-store-write-"));
    dir = join(root, "home");
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("when a step is recorded after conf wrote the profile then the file has conf's layout, mode 600, and no temp file is left", async () => {
    const store = open();
    await store.add("srv", { uri, addr: "198.18.0.2" }, false); // written by conf
    const byConf = readFileSync(store.path, "utf8");
    expect(byConf).toBe(serializeStore(JSON.parse(byConf)));
    await store.recordStep("srv", 77);
    const text = readFileSync(store.path, "utf8");
    expect(text).toBe(byConf.replace('"addr": "198.18.0.2"', '"addr": "198.18.0.2",\n\t\t\t"lastStepUsed": 77'));
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(["profiles.json"]);
  });

  it("when the store file is a symlink (dotfiles kept elsewhere) then its target is updated and the link kept", async () => {
    const elsewhere = join(root, "dotfiles");
    mkdirSync(elsewhere);
    mkdirSync(dir, { mode: 0o700 });
    const store = open();
    writeFileSync(join(elsewhere, "profiles.json"), serializeStore({ version: 1, profiles: { srv: { uri, addr: "198.18.0.2" } } }), { mode: 0o600 });
    symlinkSync(join(elsewhere, "profiles.json"), store.path);
    await store.recordStep("srv", 78);
    expect(lstatSync(store.path).isSymbolicLink()).toBe(true);
    expect(open().get("srv")?.lastStepUsed).toBe(78);
    expect(readdirSync(elsewhere)).toEqual(["profiles.json"]);
  });

  it.runIf(isRoot)("when root (sudo tknock) records a step in a user's store then the file stays that user's", async () => {
    const store = open();
    await store.add("srv", { uri, addr: "198.18.0.2" }, false);
    chownSync(store.path, 4321, 4321);
    await store.recordStep("srv", 79);
    expect(statSync(store.path)).toMatchObject({ uid: 4321, gid: 4321 });
    expect(open().get("srv")?.lastStepUsed).toBe(79);
  });
});
