import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/errors.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { clientProfile, defaultServerConfig, parseClientsFile, parseServerConfig, type ClientRecord } from "../../server/config/schema.js";

const CLIENTS_FILE = "/etc/tknock/clients.json";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe("TKNOCK_INVALID_CONFIG");
    expect((err as ConfigError).exitCode).toBe(1);
    return err as ConfigError;
  }
  throw new Error("no ConfigError was thrown");
}

/** The paths (before ": ") of a ConfigError's issues. */
function issuePaths(err: ConfigError): string[] {
  return err.issues.map((i) => i.slice(0, i.indexOf(":")));
}

describe("parseServerConfig", () => {
  it("when only clientsFile is given then every other key takes its default", () => {
    const config = parseServerConfig({ clientsFile: CLIENTS_FILE }, "server.json");
    expect(config).toEqual(defaultServerConfig({ clientsFile: CLIENTS_FILE }));
    expect(config).toMatchObject({
      interface: "any",
      protect: [22],
      stateDir: "/var/lib/tknock",
      knockRange: { min: 10000, max: 59999 },
      knockRangeDrop: true,
      skewWindows: 1,
      diagnosticWindows: 10,
      bruteForce: { ban: false },
      nftables: { table: "tknock" },
    });
  });

  it("when nested objects are partly given then their other keys keep defaults", () => {
    const config = parseServerConfig({ clientsFile: CLIENTS_FILE, bruteForce: { ban: true }, tcpdump: { bufferKiB: 65536 } }, "s");
    expect(config.bruteForce).toEqual({ maxFailuresPerMinute: 10, ban: true, banSeconds: 600 });
    expect(config.tcpdump).toEqual({ path: "tcpdump", bufferKiB: 65536, localAddresses: [] });
  });

  it("when the listener is log then its source and logExisting are read, with journald and false by default", () => {
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE }, "s")).toMatchObject({ listener: "pcap", logSource: "journald", logExisting: false });
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "log" }, "s")).toMatchObject({ listener: "log", logSource: "journald" });
    for (const logSource of ["kmsg", "journald", "file:/var/log/kern.log"]) {
      expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "log", logSource, logExisting: true }, "s")).toMatchObject({
        logSource,
        logExisting: true,
      });
    }
  });

  it("when the log source or listener is not one tknock knows then each is rejected with its path", () => {
    for (const logSource of ["syslog", "file:relative/kern.log", "file:", "/var/log/kern.log", 5]) {
      expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, logSource }, "s")))).toEqual(["logSource"]);
    }
    expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "ulog", logExisting: "yes" }, "s")))).toEqual([
      "listener",
      "logExisting",
    ]);
  });

  it("when the listener is nflog then its group is read, 5 by default, and a group outside 0..65535 is rejected with its path", () => {
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog" }, "s")).toMatchObject({ listener: "nflog", nflogGroup: 5 });
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog", nflogGroup: 0 }, "s")).toMatchObject({ nflogGroup: 0 });
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog", nflogGroup: 65535 }, "s")).toMatchObject({ nflogGroup: 65535 });
    for (const nflogGroup of [-1, 65536, 1.5, "5"]) {
      expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog", nflogGroup }, "s")))).toEqual(["nflogGroup"]);
    }
  });

  it("when prefilter is not given then it is on; false turns it off; anything but a boolean is rejected with its path", () => {
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog" }, "s")).toMatchObject({ prefilter: true });
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog", prefilter: false }, "s")).toMatchObject({ prefilter: false });
    for (const prefilter of ["false", 0, null]) {
      expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, listener: "nflog", prefilter }, "s")))).toEqual(["prefilter"]);
    }
  });

  it("when a key is unknown (a typo) then it is rejected with its path", () => {
    const err = configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, skewWindow: 2 }, "server.json"));
    expect(issuePaths(err)).toEqual(["config.skewWindow"]);
  });

  it("when a nested key is unknown then it is rejected with its full path", () => {
    const err = configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, nftables: { tabel: "x" } }, "s"));
    expect(issuePaths(err)).toEqual(["nftables.tabel"]);
  });

  it("when several values are wrong then every problem is reported at once", () => {
    const err = configError(() =>
      parseServerConfig(
        {
          clientsFile: "clients.json",
          openSeconds: 0,
          logLevel: "loud",
          bruteForce: { ban: "yes" },
          protect: [],
          knockRange: { min: 30000, max: 20000 },
        },
        "server.json",
      ),
    );
    expect(err.issues).toHaveLength(6);
    expect(issuePaths(err).sort()).toEqual(["bruteForce.ban", "clientsFile", "knockRange", "logLevel", "openSeconds", "protect"].sort());
    expect(err.message.startsWith("server.json: ")).toBe(true);
  });

  it("when toleratedWrongKnocks is set then 0..16 are accepted and anything else is rejected with its path", () => {
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE }, "s").toleratedWrongKnocks).toBe(4);
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, toleratedWrongKnocks: 0 }, "s").toleratedWrongKnocks).toBe(0);
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, toleratedWrongKnocks: 16 }, "s").toleratedWrongKnocks).toBe(16);
    for (const bad of [17, -1, 2.5, "4"]) {
      expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, toleratedWrongKnocks: bad }, "s")))).toEqual(["toleratedWrongKnocks"]);
    }
  });

  it("when clientsFile is missing then that is reported", () => {
    expect(issuePaths(configError(() => parseServerConfig({}, "s")))).toEqual(["clientsFile"]);
  });

  it("when a protected port lies inside the knock range then it is rejected", () => {
    const err = configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, protect: [22, 20000] }, "s"));
    expect(issuePaths(err)).toEqual(["protect"]);
  });

  it("when the knock range is moved away from a protected port then the config is valid", () => {
    const config = parseServerConfig({ clientsFile: CLIENTS_FILE, protect: [22, 20000], knockRange: { min: 30000, max: 40000 } }, "s");
    expect(config.protect).toEqual([22, 20000]);
  });

  it("when knockRangeDrop is false then the config says so; when it is not a boolean then it is rejected with its path", () => {
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, knockRangeDrop: false }, "s").knockRangeDrop).toBe(false);
    expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, knockRangeDrop: "no" }, "s")))).toEqual(["knockRangeDrop"]);
  });

  it("when the config is not an object then that is reported, not thrown as a TypeError", () => {
    for (const raw of [null, [], "x", 3]) expect(issuePaths(configError(() => parseServerConfig(raw, "s")))).toContain("config");
  });
});

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
const alice: ClientRecord = {
  secret: SECRET,
  periodSeconds: 30,
  knocks: 4,
  portMin: 10000,
  portMax: 59999,
  exclude: [22],
  proto: "tcp",
  open: [22],
  host: "host.example",
  enrolledAt: "2024-01-01T00:00:00.000Z",
};

describe("parseClientsFile", () => {
  it("when the file is valid then each client's profile derives the protocol's sequence (vector 1)", () => {
    const file = parseClientsFile({ version: 1, clients: { alice, "bob.laptop": { ...alice, addr: "198.18.0.2" } } }, "clients.json");
    expect(Object.keys(file.clients)).toEqual(["alice", "bob.laptop"]);
    const record = file.clients["alice"];
    expect(record).toBeDefined();
    expect(deriveSequence(clientProfile("alice", record as ClientRecord), 56666666)).toEqual([34366, 56589, 52159, 24766]);
    expect(file.clients["bob.laptop"]?.addr).toBe("198.18.0.2");
  });

  it("when there are no clients then the file is valid and empty", () => {
    expect(parseClientsFile({ version: 1, clients: {} }, "c")).toEqual({ version: 1, clients: {} });
  });

  it("when the version is not 1 then it is rejected", () => {
    expect(issuePaths(configError(() => parseClientsFile({ version: 2, clients: {} }, "c")))).toEqual(["version"]);
  });

  it("when a client name is not allowed then it is rejected", () => {
    expect(issuePaths(configError(() => parseClientsFile({ version: 1, clients: { "bad name": alice } }, "c")))).toEqual([
      "clients (entry 1)", // a bad name is not quoted: it may be anything, a pasted secret included
    ]);
  });

  it("when several clients have problems then all are reported at once", () => {
    const err = configError(() =>
      parseClientsFile(
        {
          version: 1,
          clients: {
            a: { ...alice, knocks: 99 },
            b: { ...alice, proto: "sctp", open: [] },
            c: { ...alice, colour: "red" },
          },
        },
        "clients.json",
      ),
    );
    expect(issuePaths(err).sort()).toEqual(["clients.a.knocks", "clients.b.open", "clients.b.proto", "clients.c.colour"]);
  });

  it("when range minus exclusions holds fewer ports than knocks then the client is rejected", () => {
    const err = configError(() => parseClientsFile({ version: 1, clients: { a: { ...alice, portMin: 20000, portMax: 20003, exclude: [20000] } } }, "c"));
    expect(issuePaths(err)).toEqual(["clients.a"]);
  });

  const secretCases: { name: string; secret: string }[] = [
    { name: "not base32", secret: `${SECRET.slice(0, 40)}189!` },
    { name: "lower case", secret: SECRET.toLowerCase() },
    { name: "too short (5 bytes)", secret: SECRET.slice(0, 8) },
  ];
  for (const c of secretCases) {
    it(`when a secret is ${c.name} then it is rejected without quoting it`, () => {
      const err = configError(() => parseClientsFile({ version: 1, clients: { a: { ...alice, secret: c.secret } } }, "c"));
      expect(issuePaths(err)[0]).toMatch(/^clients\.a/);
      expect(err.message).not.toContain(c.secret);
      for (const issue of err.issues) expect(issue).not.toContain(c.secret);
    });
  }

  it("when a secret sits under a misspelled key then the unknown key is reported without its value", () => {
    const { secret: _omit, ...rest } = alice;
    const err = configError(() => parseClientsFile({ version: 1, clients: { a: { ...rest, secrets: SECRET } } }, "c"));
    expect(issuePaths(err).sort()).toEqual(["clients.a.secret", "clients.a.secrets"]);
    expect(err.message).not.toContain(SECRET.slice(0, 16));
  });
});

describe("parseServerConfig: firewall backends", () => {
  const open = ["/usr/local/bin/fw", "open", "{ip}", "{port}"];
  const close = ["/usr/local/bin/fw", "close", "{ip}", "{port}"];

  it("when the firewall is command with open and close then they are read, protos default to tcp and udp; gateForward defaults to auto", () => {
    const config = parseServerConfig({ clientsFile: CLIENTS_FILE, firewall: "command", command: { open, close } }, "s");
    expect(config.command).toEqual({ open, close, protos: ["tcp", "udp"], timeoutMs: 10_000 });
    expect(config.gateForward).toBe("auto");
    expect(parseServerConfig({ clientsFile: CLIENTS_FILE, firewall: "iptables", gateForward: true }, "s")).toMatchObject({
      firewall: "iptables",
      gateForward: true,
      iptables: { prefix: "tknock" },
    });
  });

  it("when the firewall is command without commands, or with bad ones, then each problem is reported with its path", () => {
    expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, firewall: "command" }, "s")))).toEqual(["command"]);
    const err = configError(() =>
      parseServerConfig(
        { clientsFile: CLIENTS_FILE, firewall: "command", command: { open: ["fw", "{ip}"], close: ["/bin/fw", "{address}"], protos: ["icmp"] } },
        "s",
      ),
    );
    expect(issuePaths(err)).toEqual(["command.open", "command.close", "command.protos[0]"]);
    expect(issuePaths(configError(() => parseServerConfig({ clientsFile: CLIENTS_FILE, firewall: "pf", gateForward: "yes" }, "s")))).toEqual([
      "firewall",
      "gateForward",
    ]);
  });
});

describe("parseClientsFile: per-client openSeconds", () => {
  it("when a client has its own openSeconds then it is kept; out of range it is rejected with its path", () => {
    expect(parseClientsFile({ version: 1, clients: { alice: { ...alice, openSeconds: 600 } } }, "c").clients["alice"]?.openSeconds).toBe(600);
    expect(parseClientsFile({ version: 1, clients: { alice } }, "c").clients["alice"]?.openSeconds).toBeUndefined();
    expect(issuePaths(configError(() => parseClientsFile({ version: 1, clients: { alice: { ...alice, openSeconds: 0 } } }, "c")))).toEqual([
      "clients.alice.openSeconds",
    ]);
  });
});
