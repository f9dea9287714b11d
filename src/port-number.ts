/** A TCP or UDP port number a rule or a knock may name: an integer from 1 to 65535 (0 is never valid). */
export function isPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}
