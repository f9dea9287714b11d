/**
 * The page's profiles in IndexedDB: one record holding every profile (the enrolment URI, which carries the
 * secret, and the last step used), sealed with the passphrase when one is set. Every read-modify-write runs under
 * a Web Lock, so two tabs never knock with the same step (the CLI's store lock, client/pid-lock.ts).
 */
import { deriveKey, newSalt, open, PBKDF2_ITERATIONS, saltOf, seal, type Sealed } from "./crypto.js";

export type WebProfile = {
  readonly name: string;
  readonly uri: string;
  /** Where knocks go: the URI's addr, else its host. */
  readonly addr: string;
  /** The last step knocked with, written before the first knock leaves (client/steps.ts). */
  readonly lastStepUsed?: number;
};

/** What IndexedDB holds, and what a backup file holds: the same record. */
export type StoreRecord = { readonly format: "tknock-web-store"; readonly version: 1; readonly profiles?: readonly WebProfile[]; readonly sealed?: Sealed };

const DB = "tknock";
const TABLE = "state";
const KEY = "store";
const LOCK = "tknock-store";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

let dbPromise: Promise<IDBDatabase> | undefined;
function db(): Promise<IDBDatabase> {
  dbPromise ??= new Promise((resolve, reject) => {
    if (typeof indexedDB === "undefined") {
      reject(new Error("this browser offers no IndexedDB here (a private window may block it): profiles cannot be stored"));
      return;
    }
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(TABLE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("cannot open IndexedDB"));
  });
  return dbPromise;
}

async function readRecord(): Promise<StoreRecord | undefined> {
  const tx = (await db()).transaction(TABLE, "readonly");
  return (await request(tx.objectStore(TABLE).get(KEY))) as StoreRecord | undefined;
}

/** Resolves once the transaction is committed: the step is on disk before any knock leaves. */
async function writeRecord(record: StoreRecord): Promise<void> {
  const tx = (await db()).transaction(TABLE, "readwrite", { durability: "strict" });
  tx.objectStore(TABLE).put(record, KEY);
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted (storage full?)"));
  });
}

function withLock<T>(fn: () => Promise<T>): Promise<T> {
  // Web Locks are in every current browser; without them (an old one) a single tab is still safe.
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks === undefined ? fn() : (locks.request(LOCK, fn) as Promise<T>);
}

const EMPTY: StoreRecord = { format: "tknock-web-store", version: 1, profiles: [] };

function checkRecord(value: unknown): StoreRecord {
  const r = value as Partial<StoreRecord> | null;
  if (r === null || typeof r !== "object" || r.format !== "tknock-web-store" || r.version !== 1 || (r.profiles === undefined && r.sealed === undefined)) {
    throw new Error("not a tknock web backup (expected a file written by Export backup)");
  }
  return r as StoreRecord;
}

function checkProfiles(value: unknown): WebProfile[] {
  if (!Array.isArray(value)) throw new Error("the stored profiles are damaged");
  return value as WebProfile[];
}

export class WebStore {
  /** Set while unlocked: the key the record is sealed with. */
  private key: { key: CryptoKey; salt: Uint8Array; iterations: number } | undefined;

  /** "empty" and "open" can be read; "locked" needs unlock(). */
  async state(): Promise<"open" | "locked"> {
    const r = await readRecord();
    return r?.sealed !== undefined && this.key === undefined ? "locked" : "open";
  }

  async isProtected(): Promise<boolean> {
    return (await readRecord())?.sealed !== undefined;
  }

  async unlock(passphrase: string): Promise<void> {
    const sealed = (await readRecord())?.sealed;
    if (sealed === undefined) return;
    const salt = saltOf(sealed);
    const key = await deriveKey(passphrase, salt, sealed.iterations);
    checkProfiles(JSON.parse(await open(key, sealed)));
    this.key = { key, salt, iterations: sealed.iterations };
  }

  lock(): void {
    this.key = undefined;
  }

  private async decode(r: StoreRecord | undefined): Promise<WebProfile[]> {
    if (r === undefined) return [];
    if (r.sealed === undefined) return checkProfiles(r.profiles);
    if (this.key === undefined) throw new Error("the profiles are locked: enter the passphrase first");
    return checkProfiles(JSON.parse(await open(this.key.key, r.sealed)));
  }

  private async encode(profiles: readonly WebProfile[]): Promise<StoreRecord> {
    if (this.key === undefined) return { ...EMPTY, profiles };
    const { key, salt, iterations } = this.key;
    return { format: "tknock-web-store", version: 1, sealed: await seal(key, salt, iterations, JSON.stringify(profiles)) };
  }

  async list(): Promise<WebProfile[]> {
    return this.decode(await readRecord());
  }

  /** Read, change, write under the lock; returns what fn returned. */
  async update<T>(fn: (profiles: WebProfile[]) => Promise<{ profiles: WebProfile[]; result: T }> | { profiles: WebProfile[]; result: T }): Promise<T> {
    return withLock(async () => {
      const { profiles, result } = await fn(await this.decode(await readRecord()));
      await writeRecord(await this.encode(profiles));
      return result;
    });
  }

  /** Sets, changes or (with "") removes the passphrase; the profiles are re-sealed at once. */
  async setPassphrase(passphrase: string): Promise<void> {
    await withLock(async () => {
      const profiles = await this.decode(await readRecord());
      if (passphrase === "") {
        this.key = undefined;
      } else {
        const salt = newSalt();
        this.key = { key: await deriveKey(passphrase, salt, PBKDF2_ITERATIONS), salt, iterations: PBKDF2_ITERATIONS };
      }
      await writeRecord(await this.encode(profiles));
    });
  }

  /** The backup file's text: the stored record as is (sealed when a passphrase is set). */
  async exportBackup(): Promise<string> {
    return JSON.stringify((await readRecord()) ?? EMPTY, null, 1);
  }

  /** Adds a backup's profiles (a sealed one needs its passphrase), replacing those of the same name. */
  async importBackup(text: string, passphrase: string): Promise<string[]> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error("not a tknock web backup (not JSON)");
    }
    const record = checkRecord(parsed);
    let incoming: WebProfile[];
    if (record.sealed !== undefined) {
      if (passphrase === "") throw new Error("this backup is protected: type its passphrase in the Backup passphrase field first");
      incoming = checkProfiles(JSON.parse(await open(await deriveKey(passphrase, saltOf(record.sealed), record.sealed.iterations), record.sealed)));
    } else {
      incoming = checkProfiles(record.profiles);
    }
    return this.update((profiles) => {
      const names = new Set(incoming.map((p) => p.name));
      return { profiles: [...profiles.filter((p) => !names.has(p.name)), ...incoming], result: incoming.map((p) => p.name) };
    });
  }
}
