import { statSync } from "node:fs";
import { loadClientsFile, writeFileAtomic } from "../src/config/load.js";
import type { ClientsFile } from "../src/config/schema.js";
import { TknockError } from "../src/errors.js";

/**
 * The clients file holds every secret: refuse to use it unless only its owner can read it, and never print
 * a secret from it.
 */
export function checkClientsFilePermissions(path: string): void {
  let mode: number;
  let uid: number;
  try {
    const st = statSync(path);
    mode = st.mode;
    uid = st.uid;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new TknockError("TKNOCK_FILE_MISSING", `clients file ${path} does not exist: create it with \`tknock-server init\``, 1, { cause });
    }
    throw new TknockError("TKNOCK_FILE_UNREADABLE", `clients file ${path} cannot be read (${code ?? "error"})`, 1, { cause });
  }
  if ((mode & 0o077) !== 0) {
    throw new TknockError(
      "TKNOCK_CLIENTS_PERMISSIONS",
      `clients file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${path}`,
      1,
    );
  }
  const me = process.getuid?.();
  if (me !== undefined && uid !== me) {
    throw new TknockError(
      "TKNOCK_CLIENTS_OWNER",
      `clients file ${path} is owned by uid ${uid}, not by the user running tknock-server (uid ${me}): chown it`,
      1,
    );
  }
}

export function readClients(path: string): ClientsFile {
  checkClientsFilePermissions(path);
  return loadClientsFile(path);
}

export function writeClients(path: string, file: ClientsFile): void {
  writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
}
