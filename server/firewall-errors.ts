import { ExitCode, TknockError } from "../src/errors.js";
import { isRoot, RUN_AS_ROOT } from "../src/fs-errors.js";

/** nft's words when the kernel refuses a netlink request for lack of CAP_NET_ADMIN. */
const NFT_REFUSED = /Operation not permitted|you must be root|Permission denied/i;

/**
 * A firewall error caused by missing rights, as one line with the fix (nft's own text names no fix). Other errors
 * pass through unchanged. `action` says what the command was doing ("read", "remove").
 */
export function firewallPermissionError(err: unknown, action: string, table: string): unknown {
  if (!(err instanceof TknockError) || err.code !== "TKNOCK_FIREWALL" || !NFT_REFUSED.test(err.message)) return err;
  const fix = isRoot() ? "refused even to root: the process lacks CAP_NET_ADMIN (a container or a unit that drops it)" : RUN_AS_ROOT;
  return new TknockError("TKNOCK_PERMISSION", `cannot ${action} nftables table inet ${table} (operation not permitted): ${fix}`, ExitCode.usage, {
    cause: err,
  });
}
