import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { ExitCode, TknockError } from "../../src/errors.js";
import { readFileError } from "../../src/fs-errors.js";
import { describeJsonProblem, findJsonProblem } from "./json-scan.js";
import { parseClientsFile, parseServerConfig, type ClientsFile, type ServerConfig } from "./schema.js";

/**
 * Reads and parses a JSON file, with errors that name the file and what to do. A syntax error or a repeated key
 * is reported by line and column only: JSON.parse's own message quotes the text, which can be part of a secret.
 */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw readFileError(cause, `${what} ${path}`, { missingFix: "create it with `tknock-server init` or pass --config" });
  }
  const problem = findJsonProblem(text);
  if (problem !== undefined) {
    throw new TknockError(
      problem.kind === "syntax" ? "TKNOCK_FILE_NOT_JSON" : "TKNOCK_DUPLICATE_KEY",
      `${what} ${path} ${describeJsonProblem(problem)}`,
      ExitCode.usage,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Unreachable after the scan; still never pass JSON.parse's message on.
    throw new TknockError("TKNOCK_FILE_NOT_JSON", `${what} ${path} is not valid JSON: check it with a JSON validator`, ExitCode.usage);
  }
}

export function loadServerConfig(path: string): ServerConfig {
  return parseServerConfig(readJsonFile(path, "config file"), path);
}

export function loadClientsFile(path: string): ClientsFile {
  return parseClientsFile(readJsonFile(path, "clients file"), path);
}

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content: temp file in the same
 * directory, fsync, rename over the target, fsync the directory.
 */
export function writeFileAtomic(path: string, content: string, mode = 0o600): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  try {
    const dirFd = openSync(dirname(path), "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}
