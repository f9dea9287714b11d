/** Whether our table is in the kernel now: `status` asks nft directly instead of trusting any daemon's report. */
import { validateTableName } from "../validate.js";
import { runNftOnce } from "./nft-process.js";

export async function nftTablePresent(nftCommand: readonly string[], table: string, timeoutMs = 5000): Promise<boolean> {
  const result = await runNftOnce(nftCommand, ["list", "table", "inet", validateTableName(table)], {
    timeoutMs,
    // ENOENT from the kernel: no such table. Any other failure (no rights, no nft) is an error, not "missing".
    allowFailure: (stderr) => /^Error: No such file or directory/m.test(stderr),
  });
  return result.stdout.trim() !== "";
}
