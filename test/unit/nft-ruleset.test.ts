import { outlineOfInstallScript } from "../../server/firewalls/nftables/gate-shape.js";
import { describe, expect, it } from "vitest";
import {
  buildInstallScript,
  buildWatchScript,
  buildListArgs,
  buildOpenLines,
  buildRemoveScript,
  MAX_GRANTS_PER_LINE,
  nftArgv,
  parseGrantsJson,
} from "../../server/firewalls/nftables/ruleset.js";
import { summarizeNftOutput } from "../../server/firewalls/nftables/nft-process.js";
import type { Grant } from "../../src/ports.js";
import { codeOf } from "../support/error-code.js";

const INSTALL_22_443 = `add table inet tknock
add set inet tknock protected { type inet_service; }
add set inet tknock grants4 { type ipv4_addr . inet_service; flags timeout; }
add set inet tknock grants6 { type ipv6_addr . inet_service; flags timeout; }
add set inet tknock services { type inet_proto . inet_service; }
add set inet tknock heartbeat { type inet_service; }
add chain inet tknock input { type filter hook input priority filter - 10; policy accept; }
flush set inet tknock protected
add element inet tknock protected { 22, 443 }
flush set inet tknock services
flush chain inet tknock input
add rule inet tknock input iif "lo" accept
add rule inet tknock input ct state established,related accept
add rule inet tknock input meta l4proto { tcp, udp } th dport @protected ip saddr . th dport @grants4 accept
add rule inet tknock input meta l4proto { tcp, udp } th dport @protected ip6 saddr . th dport @grants6 accept
add rule inet tknock input meta l4proto { tcp, udp } th dport @protected drop
add rule inet tknock input meta l4proto . th dport @services return
add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 socket transparent { 0, 1 } return
add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 drop
add chain inet tknock forward { type filter hook forward priority filter - 10; policy accept; }
flush chain inet tknock forward
delete chain inet tknock forward
`;

describe("nft ruleset builders", () => {
  it("when the gate protects 443 and 22 with a knock range then the script is exactly the documented ruleset", () => {
    expect(buildInstallScript("tknock", { protectedPorts: [443, 22, 443], knockRange: { min: 40000, max: 49999 } })).toBe(INSTALL_22_443);
  });

  it("when the forward gate is on then DNAT'ed connections to a protected port (by their original port) need a grant, and the outline expects the forward chain", () => {
    const script = buildInstallScript("tknock", { protectedPorts: [8080], knockRange: undefined, gateForward: true });
    const forward = script.split("\n").filter((l) => l.includes(" forward"));
    expect(forward).toEqual([
      "add chain inet tknock forward { type filter hook forward priority filter - 10; policy accept; }",
      "flush chain inet tknock forward",
      "add rule inet tknock forward ct state established,related accept",
      "add rule inet tknock forward ct status dnat meta l4proto { tcp, udp } ct original proto-dst @protected ip saddr . ct original proto-dst @grants4 accept",
      "add rule inet tknock forward ct status dnat meta l4proto { tcp, udp } ct original proto-dst @protected ip6 saddr . ct original proto-dst @grants6 accept",
      "add rule inet tknock forward ct status dnat meta l4proto { tcp, udp } ct original proto-dst @protected drop",
    ]);
    expect(outlineOfInstallScript(script).chains.get("forward")?.ruleCount).toBe(4);
    expect(outlineOfInstallScript(buildInstallScript("tknock", { protectedPorts: [8080], knockRange: undefined })).chains.has("forward")).toBe(false);
  });

  it("when there is no knock range and no protected port then no range rule and no empty element list is written", () => {
    const script = buildInstallScript("tk2", { protectedPorts: [], knockRange: undefined });
    expect(script).not.toContain("add element");
    expect(script).not.toMatch(/th dport \d/);
    expect(script).toContain("add rule inet tk2 input meta l4proto { tcp, udp } th dport @protected drop\n");
  });

  it("when local services are exempted then they are written once each, sorted, into the services set, and their return comes after the protected drop and before the range drop", () => {
    const script = buildInstallScript("tknock", {
      protectedPorts: [22],
      knockRange: { min: 40000, max: 49999 },
      exemptServices: [
        { proto: "udp", port: 45000 },
        { proto: "tcp", port: 41000 },
        { proto: "udp", port: 45000 },
        { proto: "tcp", port: 40001 },
      ],
    });
    expect(script).toContain("flush set inet tknock services\nadd element inet tknock services { tcp . 40001, tcp . 41000, udp . 45000 }\n");
    const rules = script.split("\n").filter((l) => l.startsWith("add rule"));
    expect(rules.slice(-4)).toEqual([
      "add rule inet tknock input meta l4proto { tcp, udp } th dport @protected drop",
      "add rule inet tknock input meta l4proto . th dport @services return",
      // A service the daemon has not listed yet: any local socket that would receive the packet.
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 socket transparent { 0, 1 } return",
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 drop",
    ]);
  });

  it("when the services go away then the set is flushed and no empty element list is written", () => {
    const script = buildInstallScript("tknock", { protectedPorts: [22], knockRange: { min: 40000, max: 49999 }, exemptServices: [] });
    expect(script).toContain("flush set inet tknock services\n");
    expect(script).not.toContain("add element inet tknock services");
  });

  it("when the log listener needs the knock range logged then a rate-limited 'tknock: ' log rule comes after the services return and before the range drop", () => {
    const script = buildInstallScript("tknock", {
      protectedPorts: [22],
      knockRange: { min: 40000, max: 49999 },
      exemptServices: [{ proto: "tcp", port: 41000 }],
      logKnocks: { min: 40000, max: 49999 },
    });
    const rules = script.split("\n").filter((l) => l.startsWith("add rule"));
    expect(rules.slice(-4)).toEqual([
      "add rule inet tknock input meta l4proto . th dport @services return",
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 socket transparent { 0, 1 } return",
      'add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 limit rate 200/second burst 400 packets log prefix "tknock: "',
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 drop",
    ]);
  });

  it("when the knock range is not dropped but logged then the log rule is there and no drop", () => {
    const script = buildInstallScript("tknock", { protectedPorts: [22], knockRange: undefined, logKnocks: { min: 7000, max: 7000 } });
    expect(script).toContain('th dport 7000 limit rate 200/second burst 400 packets log prefix "tknock: "\n');
    expect(script).not.toContain("th dport 7000 drop");
  });

  it("when the logged range is invalid then the gate is refused before anything reaches nft", () => {
    expect(codeOf(() => buildInstallScript("tknock", { protectedPorts: [22], knockRange: undefined, logKnocks: { min: 9, max: 8 } }))).toBe(
      "TKNOCK_INVALID_GATE",
    );
  });

  it("when the nflog listener needs the knock range logged then a 'log group N' rule comes after the services return and before the range drop", () => {
    const script = buildInstallScript("tknock", {
      protectedPorts: [22],
      knockRange: { min: 40000, max: 49999 },
      exemptServices: [{ proto: "udp", port: 41000 }],
      nflogKnocks: { group: 7, min: 40000, max: 49999 },
    });
    const rules = script.split("\n").filter((l) => l.startsWith("add rule"));
    expect(rules.slice(-4)).toEqual([
      "add rule inet tknock input meta l4proto . th dport @services return",
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 socket transparent { 0, 1 } return",
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 log group 7 snaplen 128 queue-threshold 1",
      "add rule inet tknock input meta l4proto { tcp, udp } th dport 40000-49999 drop",
    ]);
    expect(script).not.toContain("limit rate");
  });

  it("when the prefilter is on then first ports are logged in batches (SPA ports at once) and make their source active, other watched ports are logged at once only for active sources or on overflow, and the drop still takes the whole range", () => {
    const script = buildInstallScript("tknock", {
      protectedPorts: [22],
      knockRange: { min: 40000, max: 49999 },
      nflogKnocks: { group: 7, min: 40000, max: 49999, watchOnly: true, activeSeconds: 6 },
    });
    const rules = script.split("\n").filter((l) => l.startsWith("add rule"));
    const log = "log group 7 snaplen 128 queue-threshold 1";
    const l4 = "meta l4proto { tcp, udp }";
    expect(rules.slice(-9)).toEqual([
      `add rule inet tknock input ${l4} th dport @starts th dport != @instant log group 7 snaplen 128 queue-threshold 64`,
      `add rule inet tknock input ${l4} th dport @instant ${log}`,
      `add rule inet tknock input meta nfproto ipv4 ${l4} th dport @starts update @active4 { ip saddr } drop`,
      `add rule inet tknock input meta nfproto ipv6 ${l4} th dport @starts update @active6 { ip6 saddr } drop`,
      `add rule inet tknock input ${l4} th dport @starts update @overflow { meta l4proto }`,
      `add rule inet tknock input ${l4} th dport @watch ip saddr @active4 update @active4 { ip saddr } ${log} drop`,
      `add rule inet tknock input ${l4} th dport @watch ip6 saddr @active6 update @active6 { ip6 saddr } ${log} drop`,
      `add rule inet tknock input ${l4} th dport @watch meta l4proto @overflow ${log}`,
      `add rule inet tknock input ${l4} th dport 40000-49999 drop`,
    ]);
    expect(script).toContain("add set inet tknock starts { type inet_service; }");
    expect(script).toContain("add set inet tknock instant { type inet_service; }");
    expect(script).toContain("add set inet tknock active4 { type ipv4_addr; flags dynamic,timeout; timeout 6s; size 65536; }");
    expect(script).not.toContain("flush set inet tknock watch");
    expect(script).not.toContain("flush set inet tknock starts");
  });

  it("when the prefilter is on without the knock-range drop then a watched packet ends our chain with return, deciding nothing", () => {
    const script = buildInstallScript("tknock", {
      protectedPorts: [22],
      knockRange: undefined,
      nflogKnocks: { group: 7, min: 40000, max: 49999, watchOnly: true },
    });
    expect(script).toContain("update @active4 { ip saddr } return");
    expect(script).not.toContain("{ ip saddr } drop");
    expect(script).not.toContain("th dport 40000-49999 drop");
  });

  it("when the prefilter's active time is not 1..3600 s then the gate is refused before nft", () => {
    for (const activeSeconds of [0, 3601, 1.5]) {
      const nflogKnocks = { group: 7, min: 40000, max: 49999, watchOnly: true, activeSeconds };
      expect(codeOf(() => buildInstallScript("tknock", { protectedPorts: [22], knockRange: undefined, nflogKnocks }))).toBe("TKNOCK_INVALID_GATE");
    }
  });

  it("when the watched ports are replaced then one script flushes the sets and adds the ports, sorted and unique, a first port never among the others, an instant port always among the first; a bad port is refused before nft", () => {
    expect(buildWatchScript("tknock", { starts: [40007, 40001, 40007], others: [40500, 40001] })).toBe(
      "flush set inet tknock starts\nadd element inet tknock starts { 40001, 40007 }\nflush set inet tknock instant\nflush set inet tknock watch\nadd element inet tknock watch { 40500 }\n",
    );
    expect(buildWatchScript("tknock", { starts: [40007], instant: [40300], others: [40300, 40500] })).toBe(
      "flush set inet tknock starts\nadd element inet tknock starts { 40007, 40300 }\nflush set inet tknock instant\nadd element inet tknock instant { 40300 }\nflush set inet tknock watch\nadd element inet tknock watch { 40500 }\n",
    );
    expect(buildWatchScript("tknock", { starts: [], others: [] })).toBe(
      "flush set inet tknock starts\nflush set inet tknock instant\nflush set inet tknock watch\n",
    );
    expect(codeOf(() => buildWatchScript("tknock", { starts: [], instant: [0], others: [] }))).toBe("TKNOCK_INVALID_GATE");
    expect(codeOf(() => buildWatchScript("tknock", { starts: [40001], others: [70000] }))).toBe("TKNOCK_INVALID_GATE");
  });

  it("when the NFLOG group or its range is invalid then the gate is refused before anything reaches nft", () => {
    for (const nflogKnocks of [
      { group: 65536, min: 40000, max: 49999 },
      { group: -1, min: 40000, max: 49999 },
      { group: 1.5, min: 40000, max: 49999 },
      { group: 5, min: 9, max: 8 },
    ]) {
      expect(codeOf(() => buildInstallScript("tknock", { protectedPorts: [22], knockRange: undefined, nflogKnocks }))).toBe("TKNOCK_INVALID_GATE");
    }
  });

  it("when the knock range is one port then the rule names that port", () => {
    expect(buildInstallScript("tknock", { protectedPorts: [22], knockRange: { min: 7000, max: 7000 } })).toContain("th dport 7000 drop\n");
  });

  it("when grants of both families are opened then one line adds, deletes and re-adds them with their timeouts", () => {
    const lines = buildOpenLines("tknock", [
      { src: "198.18.0.2", port: 22, openSeconds: 30 },
      { src: "FD18:0018::0:2", port: 443, openSeconds: 5 },
    ]);
    expect(lines).toEqual([
      "add element inet tknock grants4 { 198.18.0.2 . 22 timeout 30s }; " +
        "delete element inet tknock grants4 { 198.18.0.2 . 22 }; " +
        "add element inet tknock grants4 { 198.18.0.2 . 22 timeout 30s }; " +
        "add element inet tknock grants6 { fd18:18::2 . 443 timeout 5s }; " +
        "delete element inet tknock grants6 { fd18:18::2 . 443 }; " +
        "add element inet tknock grants6 { fd18:18::2 . 443 timeout 5s }",
    ]);
  });

  it("when the same source and port is granted twice in one call then it appears once with the longer timeout", () => {
    const [line] = buildOpenLines("tknock", [
      { src: "198.18.0.2", port: 22, openSeconds: 10 },
      { src: "198.18.0.2", port: 22, openSeconds: 40 },
      { src: "198.18.0.2", port: 22, openSeconds: 20 },
    ]);
    expect(line).toBe(
      "add element inet tknock grants4 { 198.18.0.2 . 22 timeout 40s }; delete element inet tknock grants4 { 198.18.0.2 . 22 }; " +
        "add element inet tknock grants4 { 198.18.0.2 . 22 timeout 40s }",
    );
  });

  it("when no grant is given then there is nothing to run", () => {
    expect(buildOpenLines("tknock", [])).toEqual([]);
  });

  it("when many grants are opened then they are split into lines of bounded size", () => {
    const grants: Grant[] = Array.from({ length: MAX_GRANTS_PER_LINE + 1 }, (_, i) => ({ src: `198.18.${i >> 8}.${i & 255}`, port: 22, openSeconds: 30 }));
    const lines = buildOpenLines("tknock", grants);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe(
      "add element inet tknock grants4 { 198.18.1.0 . 22 timeout 30s }; delete element inet tknock grants4 { 198.18.1.0 . 22 }; " +
        "add element inet tknock grants4 { 198.18.1.0 . 22 timeout 30s }",
    );
  });

  it.each([
    ["a command after the address", "198.18.0.2 . 22 }; flush ruleset; add element inet tknock grants4 { 1.2.3.4"],
    ["a newline", "198.18.0.2\nflush ruleset"],
    ["an IPv6 zone id", "fe80::1%eth0"],
    ["a prefix", "198.18.0.0/15"],
    ["a host name", "localhost"],
    ["leading zeros", "198.018.0.2"],
    ["an empty string", ""],
  ])("when a grant source holds %s then it is refused with TKNOCK_INVALID_GRANT", (_what, src) => {
    expect(codeOf(() => buildOpenLines("tknock", [{ src, port: 22, openSeconds: 30 }]))).toBe("TKNOCK_INVALID_GRANT");
  });

  it.each([
    ["port 0", { src: "198.18.0.2", port: 0, openSeconds: 30 }],
    ["port 65536", { src: "198.18.0.2", port: 65536, openSeconds: 30 }],
    ["a fractional port", { src: "198.18.0.2", port: 22.5, openSeconds: 30 }],
    ["a port as text", { src: "198.18.0.2", port: "22 }; flush ruleset" as unknown as number, openSeconds: 30 }],
    ["openSeconds 0", { src: "198.18.0.2", port: 22, openSeconds: 0 }],
    ["openSeconds over a day", { src: "198.18.0.2", port: 22, openSeconds: 86_401 }],
    ["openSeconds as text", { src: "198.18.0.2", port: 22, openSeconds: "30s; flush ruleset" as unknown as number }],
  ])("when a grant has %s then it is refused with TKNOCK_INVALID_GRANT", (_what, grant) => {
    expect(codeOf(() => buildOpenLines("tknock", [grant]))).toBe("TKNOCK_INVALID_GRANT");
  });

  it("when one grant of several is bad then no line is built at all", () => {
    expect(
      codeOf(() =>
        buildOpenLines("tknock", [
          { src: "198.18.0.2", port: 22, openSeconds: 30 },
          { src: "198.18.0.3", port: 0, openSeconds: 30 },
        ]),
      ),
    ).toBe("TKNOCK_INVALID_GRANT");
  });

  it.each([
    ["a protected port as text", { protectedPorts: ["22 }; flush ruleset" as unknown as number], knockRange: undefined }],
    ["protected port 0", { protectedPorts: [0], knockRange: undefined }],
    ["an inverted knock range", { protectedPorts: [22], knockRange: { min: 5000, max: 4000 } }],
    ["a knock range end as text", { protectedPorts: [22], knockRange: { min: 4000, max: "5000 accept" as unknown as number } }],
    ["an exempt service with another protocol", { protectedPorts: [22], knockRange: undefined, exemptServices: [{ proto: "sctp" as "tcp", port: 4000 }] }],
    [
      "an exempt service port as text",
      { protectedPorts: [22], knockRange: undefined, exemptServices: [{ proto: "tcp" as const, port: "4000 }; flush ruleset" as unknown as number }] },
    ],
    ["an exempt service port 0", { protectedPorts: [22], knockRange: undefined, exemptServices: [{ proto: "udp" as const, port: 0 }] }],
    ["exempt services that are not a list", { protectedPorts: [22], knockRange: undefined, exemptServices: "tcp . 4000" as unknown as [] }],
  ])("when the gate has %s then it is refused with TKNOCK_INVALID_GATE", (_what, gate) => {
    expect(codeOf(() => buildInstallScript("tknock", gate))).toBe("TKNOCK_INVALID_GATE");
  });

  it.each(["", "tk nock", "tknock; flush ruleset", "tknock\nflush ruleset", "1tk", "a".repeat(33), "tk-nock"])(
    "when the table name is %j then every builder refuses it with TKNOCK_INVALID_GATE",
    (table) => {
      const gate = { protectedPorts: [22], knockRange: undefined };
      expect(codeOf(() => buildInstallScript(table, gate))).toBe("TKNOCK_INVALID_GATE");
      expect(codeOf(() => buildOpenLines(table, [{ src: "198.18.0.2", port: 22, openSeconds: 30 }]))).toBe("TKNOCK_INVALID_GATE");
      expect(codeOf(() => buildRemoveScript(table))).toBe("TKNOCK_INVALID_GATE");
      expect(codeOf(() => buildListArgs(table))).toBe("TKNOCK_INVALID_GATE");
    },
  );

  it("when removing then only our table is named, created first so an absent table is not an error", () => {
    expect(buildRemoveScript("tknock")).toBe("add table inet tknock\ndelete table inet tknock\n");
  });

  it("when nft runs through a prefix then the argv is the prefix then the arguments", () => {
    expect(nftArgv(["ip", "netns", "exec", "ns1", "nft"], buildListArgs("tknock"))).toEqual({
      file: "ip",
      args: ["netns", "exec", "ns1", "nft", "-j", "list", "table", "inet", "tknock"],
    });
    expect(nftArgv(["/usr/sbin/nft"], ["-f", "-"])).toEqual({ file: "/usr/sbin/nft", args: ["-f", "-"] });
  });
});

describe("nft list output parser", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6", json_schema_version: 1 } },
      { table: { family: "inet", name: "tknock", handle: 1 } },
      { set: { family: "inet", name: "protected", table: "tknock", type: "inet_service", elem: [22] } },
      {
        set: {
          family: "inet",
          name: "grants4",
          table: "tknock",
          type: ["ipv4_addr", "inet_service"],
          flags: ["timeout"],
          elem: [
            { elem: { val: { concat: ["198.18.0.2", 22] }, timeout: 30, expires: 28 } },
            { concat: ["198.18.0.3", 22] },
            { elem: { val: { concat: ["not-an-address", 22] }, timeout: 30, expires: 1 } },
          ],
        },
      },
      {
        set: {
          family: "inet",
          name: "grants6",
          table: "tknock",
          type: ["ipv6_addr", "inet_service"],
          flags: ["timeout"],
          elem: [{ elem: { val: { concat: ["fd18:18::2", 443] }, timeout: 5, expires: 4 } }],
        },
      },
      { set: { family: "inet", name: "grants4", table: "other", elem: [{ elem: { val: { concat: ["198.18.0.9", 22] }, timeout: 30, expires: 28 } }] } },
    ],
  });

  it("when nft lists our table then the grants of both families come back with seconds left, and nothing else", () => {
    expect(parseGrantsJson(json, "tknock")).toEqual([
      { src: "198.18.0.2", port: 22, openSeconds: 30, expiresInSeconds: 28 },
      { src: "198.18.0.3", port: 22, openSeconds: 0 },
      { src: "fd18:18::2", port: 443, openSeconds: 5, expiresInSeconds: 4 },
    ]);
  });

  it("when the grant sets are empty then the list is empty", () => {
    expect(parseGrantsJson(JSON.stringify({ nftables: [{ set: { name: "grants4", table: "tknock" } }] }), "tknock")).toEqual([]);
  });

  it("when the output is not nft JSON then it is refused with TKNOCK_FIREWALL", () => {
    expect(codeOf(() => parseGrantsJson("{}", "tknock"))).toBe("TKNOCK_FIREWALL");
  });

  it("when nft reports an error then the summary keeps the message and the command, without caret lines", () => {
    const text = "Error: No such file or directory\nadd element inet tknock nosuch { 1.2.3.4 . 22 }\n                        ^^^^^^\n";
    expect(summarizeNftOutput(text)).toBe("Error: No such file or directory | add element inet tknock nosuch { 1.2.3.4 . 22 }");
  });
});
