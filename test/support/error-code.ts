import { TknockError } from "../../src/errors.js";

function codeOfError(err: unknown): string {
  return err instanceof TknockError ? err.code : `not a TknockError: ${String(err)}`;
}

/** The code of the TknockError `fn` throws; undefined when it returns. Tests match on codes, never on messages. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return codeOfError(err);
  }
  return undefined;
}

/** The code of the TknockError a promise (or an async function) rejects with; undefined when it resolves. */
export async function rejectionCodeOf(work: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (err) {
    return codeOfError(err);
  }
  return undefined;
}
