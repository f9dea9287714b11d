/**
 * The Fetch standard's "bad ports" (https://fetch.spec.whatwg.org/#port-blocking): a browser refuses any request
 * to them before sending a packet, so a knock to one never leaves a web page. Inside the default knock range
 * (10000-59999) only 10080 is one.
 */
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([
  0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137,
  139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
  3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

export function isBadPort(port: number): boolean {
  return FETCH_BAD_PORTS.has(port);
}

/** The bad ports inside a knock range, ascending: what `tknock-server enroll` adds to a client's exclusions. */
export function badPortsIn(portMin: number, portMax: number): number[] {
  return [...FETCH_BAD_PORTS].filter((p) => p >= portMin && p <= portMax).sort((a, b) => a - b);
}
