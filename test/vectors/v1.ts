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
];
