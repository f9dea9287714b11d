import { chmodSync, mkdirSync, readFileSync, statSync, type Stats } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type Conf from "conf";
import { ExitCode, TknockError } from "../src/errors.js";
import { parseProfileUri, type EnrolledProfile } from "../src/protocol/profile-uri.js";
import { withPidLock } from "./pid-lock.js";
import { CLIENT_PERMISSION_FIX, storeAccessError } from "./store-errors.js";
import { serializeStore, STORE_FILE_MODE, writeStoreFile } from "./store-write.js";

/** One profile as the store file holds it: the enrolment URI (it carries the secret) plus local state. */
export type StoredEntry = {
  readonly uri: string;
  /** Where knocks go: --addr at `add`, else the URI's addr, else its host. */
  readonly addr: string;
  /** The last step knocked with; recorded before the knocks leave, so a step is never sent twice. */
  readonly lastStepUsed?: number;
  /** Steps sent too far ahead of this clock to be accepted (a one-off --time-offset): never sent again. */
  readonly avoidSteps?: readonly number[];
  /** Added to this host's clock for every knock of the profile (`tknock set NAME --time-offset`). */
  readonly timeOffsetSeconds?: number;
};

export type StoreFile = { version: 1; profiles: Record<string, StoredEntry> };

/** A stored entry with its URI parsed. */
export type StoredProfile = StoredEntry & { readonly name: string; readonly profile: EnrolledProfile };

export const STORE_FILE_NAME = "profiles.json";
const FILE_MODE = STORE_FILE_MODE;
const DIR_MODE = 0o700;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const ENTRY_KEYS = new Set(["uri", "addr", "lastStepUsed", "avoidSteps", "timeOffsetSeconds"]);
/** Steps of the avoid list older than this many windows before the newest are dropped: the server forgot them too. */
const AVOID_KEEP = 8;
export const MAX_TIME_OFFSET_SECONDS = 86_400;

export function isValidProfileName(name: string): boolean {
  return NAME_RE.test(name);
}

/**
 * --store DIR wins over TKNOCK_HOME; neither means $XDG_CONFIG_HOME/tknock or ~/.config/tknock. The default is
 * spelled out here rather than left to conf so the folder can be created 0700 before conf touches it.
 */
export function storeDirFrom(option: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (option !== undefined && option !== "") return resolve(option);
  const home = env["TKNOCK_HOME"];
  if (home !== undefined && home !== "") return resolve(home);
  const xdg = env["XDG_CONFIG_HOME"];
  return join(xdg !== undefined && xdg !== "" ? xdg : join(env["HOME"] ?? homedir(), ".config"), "tknock");
}

function invalid(path: string, what: string): TknockError {
  return new TknockError("TKNOCK_STORE_INVALID", `store ${path}: ${what}: fix the file or move it away and add the profiles again`, ExitCode.usage);
}

function checkEntry(path: string, name: string, raw: unknown): StoredEntry {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalid(path, `profile ${JSON.stringify(name)} is not an object`);
  const e = raw as Record<string, unknown>;
  for (const key of Object.keys(e)) {
    if (!ENTRY_KEYS.has(key)) throw invalid(path, `profile ${JSON.stringify(name)} has an unknown key ${JSON.stringify(key)}`);
  }
  if (typeof e["uri"] !== "string") throw invalid(path, `profile ${JSON.stringify(name)}: uri must be a string`);
  if (typeof e["addr"] !== "string" || e["addr"] === "") throw invalid(path, `profile ${JSON.stringify(name)}: addr must be a non-empty string`);
  const last = e["lastStepUsed"];
  if (last !== undefined && !(typeof last === "number" && Number.isSafeInteger(last) && last >= 0)) {
    throw invalid(path, `profile ${JSON.stringify(name)}: lastStepUsed must be a non-negative integer`);
  }
  const avoid = e["avoidSteps"];
  if (avoid !== undefined && !(Array.isArray(avoid) && avoid.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0))) {
    throw invalid(path, `profile ${JSON.stringify(name)}: avoidSteps must be a list of non-negative integers`);
  }
  const offset = e["timeOffsetSeconds"];
  if (offset !== undefined && !(typeof offset === "number" && Number.isInteger(offset) && Math.abs(offset) <= MAX_TIME_OFFSET_SECONDS)) {
    throw invalid(path, `profile ${JSON.stringify(name)}: timeOffsetSeconds must be an integer from -${MAX_TIME_OFFSET_SECONDS} to ${MAX_TIME_OFFSET_SECONDS}`);
  }
  return {
    uri: e["uri"],
    addr: e["addr"],
    ...(typeof last === "number" ? { lastStepUsed: last } : {}),
    ...(avoid !== undefined ? { avoidSteps: avoid as number[] } : {}),
    ...(typeof offset === "number" && offset !== 0 ? { timeOffsetSeconds: offset } : {}),
  };
}

/**
 * The client's profiles, in a conf store (one JSON file). It holds secrets, so the file is kept 0600 and its folder
 * 0700: checked when opened (a warning naming the fix) and repaired on every write. Every change is a
 * read-modify-write under the store's lock (`profiles.json.lock`, client/pid-lock.ts), so parallel commands never
 * lose each other's. The knock path never loads conf: reading is one JSON.parse of the file (what conf does), and
 * the step record is written by client/store-write.ts; conf writes the changes of add, remove and set.
 */
export class ProfileStore {
  readonly path: string;
  readonly dir: string;
  private conf: Conf<StoreFile> | undefined;

  private constructor(dir: string) {
    this.dir = dir;
    this.path = join(dir, STORE_FILE_NAME);
  }

  /** Opens the store in dir (the file itself appears on the first write); warn gets one line per problem found. */
  static open(opts: { dir: string; warn: (line: string) => void }): ProfileStore {
    const dir = resolve(opts.dir);
    try {
      mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    } catch (cause) {
      throw storeError(join(dir, STORE_FILE_NAME), cause);
    }
    const store = new ProfileStore(dir);
    for (const line of store.permissionProblems()) opts.warn(`warning: ${line}`);
    return store;
  }

  /** Problems with who may read the store, each with the command that fixes it. */
  permissionProblems(): string[] {
    const problems: string[] = [];
    const file = statOrUndefined(this.path);
    if (file !== undefined && (file.mode & 0o077) !== 0) {
      problems.push(`store ${this.path} is readable by others (it holds secrets): chmod 600 ${this.path}`);
    }
    const dir = statOrUndefined(this.dir);
    if (dir !== undefined && (dir.mode & 0o077) !== 0 && isOurPrivateDir(dir)) {
      problems.push(`store folder ${this.dir} is open to others: chmod 700 ${this.dir}`);
    }
    return problems;
  }

  private read(): StoreFile {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.path, "utf8"));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw storeError(this.path, cause);
      raw = {};
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalid(this.path, "not a JSON object");
    const obj = raw as Record<string, unknown>;
    const profilesRaw = obj["profiles"] ?? {};
    if (obj["version"] !== undefined && obj["version"] !== 1) throw invalid(this.path, `version ${JSON.stringify(obj["version"])} is not 1`);
    if (typeof profilesRaw !== "object" || profilesRaw === null || Array.isArray(profilesRaw)) throw invalid(this.path, "profiles must be an object");
    const profiles: Record<string, StoredEntry> = {};
    for (const [name, entry] of Object.entries(profilesRaw)) profiles[name] = checkEntry(this.path, name, entry);
    return { version: 1, profiles };
  }

  /** Profile changes go through conf; the step record (direct) does not load it. */
  private async write(file: StoreFile, direct: boolean): Promise<void> {
    try {
      if (direct) writeStoreFile(this.path, serializeStore(file));
      else (await this.openConf()).store = file;
      // Both writers create the file 0600; these repair a file or folder whose mode was changed since.
      if (((statOrUndefined(this.path)?.mode ?? 0) & 0o777) !== FILE_MODE) chmodSync(this.path, FILE_MODE);
      const dir = statOrUndefined(this.dir);
      if (dir !== undefined && (dir.mode & 0o077) !== 0 && isOurPrivateDir(dir)) chmodSync(this.dir, DIR_MODE);
    } catch (cause) {
      throw storeError(this.path, cause);
    }
  }

  private async openConf(): Promise<Conf<StoreFile>> {
    if (this.conf === undefined) {
      const { default: Conf } = await import("conf");
      this.conf = new Conf<StoreFile>({
        projectName: "tknock",
        configName: STORE_FILE_NAME.replace(/\.json$/, ""),
        cwd: this.dir,
        configFileMode: FILE_MODE,
        accessPropertiesByDotNotation: false, // profile names contain dots (host names)
        clearInvalidConfig: false, // a store holding secrets is never silently emptied
      });
    }
    return this.conf;
  }

  private parse(name: string, entry: StoredEntry): StoredProfile {
    try {
      return { name, ...entry, profile: parseProfileUri(entry.uri) };
    } catch (err) {
      if (err instanceof TknockError) throw invalid(this.path, `profile ${JSON.stringify(name)}: ${err.message}`);
      throw err;
    }
  }

  names(): string[] {
    return Object.keys(this.read().profiles).sort();
  }

  list(): StoredProfile[] {
    const { profiles } = this.read();
    return Object.keys(profiles)
      .sort()
      .map((name) => this.parse(name, profiles[name] as StoredEntry));
  }

  /** The stored entry as it is now, its URI not parsed (the step record of a profile already found). */
  entry(name: string): StoredEntry | undefined {
    return this.read().profiles[name];
  }

  get(name: string): StoredProfile | undefined {
    const entry = this.read().profiles[name];
    return entry === undefined ? undefined : this.parse(name, entry);
  }

  /** Runs a read-modify-write of the file under the store's lock; change returns false to write nothing. */
  private async update(change: (file: StoreFile) => boolean | void, direct = false): Promise<void> {
    await withPidLock(
      this.path,
      async () => {
        const file = this.read();
        if (change(file) !== false) await this.write(file, direct);
      },
      this.lockOptions(),
    );
  }

  /** For locks in the store folder: a refused lock is said like a refused store (whose folder it is, the fix). */
  lockOptions(): { permissionFix: string; fsError: (cause: unknown) => TknockError | undefined } {
    return { permissionFix: CLIENT_PERMISSION_FIX, fsError: (cause) => storeAccessError(this.path, cause) };
  }

  /** Adds a profile; a name in use is refused unless force (then it is replaced, its step history kept). */
  async add(name: string, entry: StoredEntry, force: boolean): Promise<void> {
    if (!isValidProfileName(name)) {
      throw new TknockError(
        "TKNOCK_BAD_NAME",
        `profile name ${JSON.stringify(name.slice(0, 40))} is not allowed: use letters, digits and . _ : @ - (start with a letter or digit)`,
        ExitCode.usage,
      );
    }
    await this.update((file) => {
      const old = file.profiles[name];
      if (old !== undefined && !force) {
        throw new TknockError("TKNOCK_DUPLICATE_NAME", `a profile named ${name} exists: choose another --name, or --force to replace it`, ExitCode.usage);
      }
      // Keeping the step record of a replaced profile with the same URI stops a re-import from reusing a step.
      const keep = old !== undefined && old.uri === entry.uri && entry.lastStepUsed === undefined;
      file.profiles[name] = keep
        ? {
            ...entry,
            ...(old.lastStepUsed !== undefined ? { lastStepUsed: old.lastStepUsed } : {}),
            ...(old.avoidSteps !== undefined ? { avoidSteps: old.avoidSteps } : {}),
          }
        : entry;
    });
  }

  async remove(name: string): Promise<void> {
    await this.update((file) => {
      if (file.profiles[name] === undefined) throw noProfile(name, Object.keys(file.profiles));
      delete file.profiles[name];
    });
  }

  /**
   * Persists a step about to be used; callers send nothing until this returned. "last" raises the profile's
   * last step (every step up to it is then spent); "reset" sets it (the clock went back: the record was ahead);
   * "avoid" only marks that one step as spent.
   */
  async recordStep(name: string, step: number, kind: "last" | "reset" | "avoid" = "last"): Promise<void> {
    await this.update((file) => {
      const entry = file.profiles[name];
      if (entry === undefined) throw noProfile(name, Object.keys(file.profiles));
      if (kind !== "avoid") {
        const last = kind === "last" && entry.lastStepUsed !== undefined ? Math.max(entry.lastStepUsed, step) : step;
        file.profiles[name] = { ...entry, lastStepUsed: last };
        return;
      }
      const avoid = [...(entry.avoidSteps ?? []), step].filter((s) => s >= step - AVOID_KEEP).sort((a, b) => a - b);
      file.profiles[name] = { ...entry, avoidSteps: [...new Set(avoid)] };
    }, true);
  }

  /** Stores the clock offset used by every knock of the profile (0 removes it). */
  async setTimeOffset(name: string, seconds: number): Promise<void> {
    await this.update((file) => {
      const entry = file.profiles[name];
      if (entry === undefined) throw noProfile(name, Object.keys(file.profiles));
      const { timeOffsetSeconds: _old, ...rest } = entry;
      file.profiles[name] = seconds === 0 ? rest : { ...rest, timeOffsetSeconds: seconds };
    });
  }

  /**
   * The profile for what the user typed, in this order: a profile name; the one profile whose URI host or knock
   * address matches (host names compare case-insensitively); the one profile whose host or address is a name
   * starting with it as its first label (`gw` for gw.example.org). Two matches at one level are ambiguous.
   */
  find(hostOrName: string): StoredProfile {
    const direct = this.get(hostOrName);
    if (direct !== undefined) return direct;
    const wanted = hostOrName.replace(/^\[(.*)\]$/, "$1").toLowerCase(); // ssh may pass [v6-address]
    const all = this.list();
    const names = (p: StoredProfile): string[] => [p.profile.host.toLowerCase(), p.addr.toLowerCase()];
    // Host names only: an IPv4 address has no letters, an IPv6 address has colons.
    const shortName = (n: string): string | undefined => (/[a-z]/.test(n) && !n.includes(":") && n.includes(".") ? n.slice(0, n.indexOf(".")) : undefined);
    const levels: ((p: StoredProfile) => boolean)[] = [
      (p) => names(p).includes(wanted),
      (p) => !wanted.includes(".") && names(p).some((n) => shortName(n) === wanted),
    ];
    for (const matches of levels.map((level) => all.filter(level))) {
      if (matches.length === 1) return matches[0] as StoredProfile;
      if (matches.length > 1) {
        const list = matches.map((m) => `${m.name} (${m.profile.host})`).join(", ");
        throw new TknockError("TKNOCK_AMBIGUOUS_PROFILE", `${hostOrName} matches profiles ${list}: give the profile name`, ExitCode.usage);
      }
    }
    throw noProfile(
      hostOrName,
      all.map((p) => p.name),
    );
  }
}

function noProfile(name: string, known: readonly string[]): TknockError {
  const hint = known.length === 0 ? "the store is empty: add one with `tknock add URI`" : `known: ${[...known].sort().join(", ")} (see \`tknock list\`)`;
  return new TknockError(
    "TKNOCK_NO_PROFILE",
    `no profile named ${name}, and no profile's host, address or short host name is ${name}: ${hint}`,
    ExitCode.usage,
  );
}

function storeError(path: string, cause: unknown): TknockError {
  if (cause instanceof TknockError) return cause;
  const err = cause as NodeJS.ErrnoException;
  if (err instanceof SyntaxError) return invalid(path, "not valid JSON");
  const access = storeAccessError(path, cause);
  if (access !== undefined) return access;
  const code = err?.code ?? "error";
  return new TknockError("TKNOCK_STORE_UNREADABLE", `store ${path} cannot be used (${code}): check the path and its permissions`, ExitCode.usage, { cause });
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** A folder tknock may tighten: ours, and not a shared sticky folder such as /tmp (never chmod that). */
function isOurPrivateDir(st: Stats): boolean {
  return (st.mode & 0o1000) === 0 && st.uid === process.getuid?.();
}
