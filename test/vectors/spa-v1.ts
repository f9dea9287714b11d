/**
 * SPA v1 test vectors: the single source that tests and docs/protocol.md "SPA v1" quote. Each was computed by the
 * reference and independently by a Python program using hmac, hashlib and the `cryptography` package's HKDF and
 * AESGCM. All use the secret of vector 1 of v1.ts (ASCII "12345678901234567890123456789012"), range
 * 10000..59999 excluding 22, period 30, and the nonce 00 01 02 ... 0f.
 */
export type SpaVector = {
  readonly name: string;
  readonly secretBase32: string;
  readonly periodSeconds: number;
  readonly portMin: number;
  readonly portMax: number;
  readonly exclude: readonly number[];
  readonly timestampMs: number;
  readonly step: number;
  readonly nonceHex: string;
  readonly payload: { readonly ports: readonly number[]; readonly address?: string; readonly nat: boolean };
  /** Expected values. */
  readonly spaPort: number;
  readonly keyIdHex: string;
  readonly keyHex: string;
  readonly packetHex: string;
};

const common = {
  secretBase32: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
  periodSeconds: 30,
  portMin: 10000,
  portMax: 59999,
  exclude: [22],
  step: 56666666,
  nonceHex: "000102030405060708090a0b0c0d0e0f",
  spaPort: 12219,
  keyIdHex: "99b915594170d7f8",
  keyHex: "e62ecb2da11b5eadc02372376cfb959318090e1374342867d951cdf9b8c09e97",
} as const;

export const SPA_VECTORS: readonly SpaVector[] = [
  {
    name: "SPA vector 1: open port 22 for 198.18.0.1",
    ...common,
    timestampMs: 1700000000000,
    payload: { ports: [22], address: "198.18.0.1", nat: false },
    packetHex: "0199b915594170d7f80000018bcfe56800000102030405060708090a0b0c0d0e0f18e12a2c553dc815dac0d014722e870eb6acbdbb72683ec603",
  },
  {
    name: "SPA vector 2: nat, all of the client's ports",
    ...common,
    timestampMs: 1700000000000,
    payload: { ports: [], nat: true },
    packetHex: "0199b915594170d7f80000018bcfe56800000102030405060708090a0b0c0d0e0f19e5ece700031b8bd7d0559386fdcfdfa5485c",
  },
  {
    name: "SPA vector 3: ports 22 and 443 for fd18:18::1",
    ...common,
    timestampMs: 1700000012345,
    payload: { ports: [22, 443], address: "fd18:18::1", nat: false },
    packetHex:
      "0199b915594170d7f80000018bcfe59839000102030405060708090a0b0c0d0e0f18e311265524c915cccc9fc67f68138ec0b7ace21bb7b6bd33157ffbbb119f424f12315213ab01",
  },
];
