/** Protocol v1 test vectors: the single source that tests and docs/protocol.md quote. */
export type Vector = {
  readonly name: string;
  readonly secretBase32: string;
  readonly atUnixSeconds: number;
  readonly periodSeconds: number;
  readonly knocks: number;
  readonly portMin: number;
  readonly portMax: number;
  readonly exclude: readonly number[];
  readonly step: number;
  readonly ports: readonly number[];
};

export const VECTORS: readonly Vector[] = [
  {
    name: "vector 1: defaults",
    secretBase32: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
    atUnixSeconds: 1700000000,
    periodSeconds: 30,
    knocks: 4,
    portMin: 10000,
    portMax: 59999,
    exclude: [22],
    step: 56666666,
    ports: [34366, 56589, 52159, 24766],
  },
  {
    name: "vector 2: tiny range forces rejection and exclusion skips",
    secretBase32: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    atUnixSeconds: 2000000000,
    periodSeconds: 30,
    knocks: 6,
    portMin: 20000,
    portMax: 20009,
    exclude: [20003],
    step: 66666666,
    ports: [20000, 20002, 20007, 20004, 20005, 20006],
  },
  {
    name: "vector 3: 16 knocks over a 20-port range need four HMAC blocks",
    secretBase32: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
    atUnixSeconds: 1700000000,
    periodSeconds: 30,
    knocks: 16,
    portMin: 20000,
    portMax: 20019,
    exclude: [],
    step: 56666666,
    ports: [20006, 20009, 20019, 20010, 20001, 20005, 20011, 20003, 20014, 20002, 20015, 20016, 20018, 20012, 20000, 20017],
  },
  {
    // N = 65175 gives LIMIT = 2^32 - 65146; word 1 of block 0 is 0xffffe614 >= LIMIT. Without the rejection
    // the second port would be 58810.
    name: "vector 4: a keystream word at or above LIMIT is rejected",
    secretBase32: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
    atUnixSeconds: 1700109180,
    periodSeconds: 30,
    knocks: 4,
    portMin: 300,
    portMax: 65474,
    exclude: [22],
    step: 56670306,
    ports: [44821, 59613, 59220, 6661],
  },
  {
    name: 'vector 5: shortest secret (16 ASCII bytes "0123456789abcdef"), period 10, 2 knocks',
    secretBase32: "GAYTEMZUGU3DOOBZMFRGGZDFMY",
    atUnixSeconds: 1700000000,
    periodSeconds: 10,
    knocks: 2,
    portMin: 40000,
    portMax: 40099,
    exclude: [40000],
    step: 170000000,
    ports: [40085, 40080],
  },
];
