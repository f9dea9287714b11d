import { describe, expect, it } from "vitest";
import { buildGrantLines, buildRestoreInput, buildSetCreateLines, iptablesNames, parseGrantSave } from "../../server/firewalls/iptables/iptables-rules.js";
import { validateGate } from "../../server/firewalls/validate.js";
import { codeOf } from "../support/error-code.js";

const names = iptablesNames("tknock");

describe("iptables rule builders", () => {
  it("when the gate protects 22 with a knock range, a local service and the forward gate then the IPv4 restore input is exactly this", () => {
    const gate = validateGate({
      protectedPorts: [22],
      knockRange: { min: 40000, max: 40100 },
      exemptServices: [{ proto: "udp", port: 40060 }],
      gateForward: true,
    });
    expect(buildRestoreInput(names, 4, gate)).toBe(
      [
        "*filter",
        ":tknock-in - [0:0]",
        ":tknock-fwd - [0:0]",
        "-A tknock-in -i lo -j RETURN",
        "-A tknock-in -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A tknock-in -p tcp -m multiport --dports 22 -m set --match-set tknock-g4 src,dst -j RETURN",
        "-A tknock-in -p tcp -m multiport --dports 22 -j DROP",
        "-A tknock-in -p udp -m multiport --dports 22 -m set --match-set tknock-g4 src,dst -j RETURN",
        "-A tknock-in -p udp -m multiport --dports 22 -j DROP",
        "-A tknock-in -p udp --dport 40060 -j RETURN",
        // A service not listed yet: a local socket (bound to any address too) would receive the packet.
        "-A tknock-in -p tcp --dport 40000:40100 -m socket --nowildcard -j RETURN",
        "-A tknock-in -p udp --dport 40000:40100 -m socket --nowildcard -j RETURN",
        "-A tknock-in -p tcp --dport 40000:40100 -j DROP",
        "-A tknock-in -p udp --dport 40000:40100 -j DROP",
        "-A tknock-fwd -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A tknock-fwd -m conntrack --ctstate DNAT --ctproto tcp --ctorigdstport 22 -m set --match-set tknock-f4-22 src -j RETURN",
        "-A tknock-fwd -m conntrack --ctstate DNAT --ctproto tcp --ctorigdstport 22 -j DROP",
        "-A tknock-fwd -m conntrack --ctstate DNAT --ctproto udp --ctorigdstport 22 -m set --match-set tknock-f4-22 src -j RETURN",
        "-A tknock-fwd -m conntrack --ctstate DNAT --ctproto udp --ctorigdstport 22 -j DROP",
        "COMMIT",
        "",
      ].join("\n"),
    );
    expect(buildSetCreateLines(names, gate)).toEqual([
      "create tknock-g4 hash:ip,port family inet timeout 0 comment",
      "create tknock-f4-22 hash:ip family inet timeout 0",
      "create tknock-g6 hash:ip,port family inet6 timeout 0 comment",
      "create tknock-f6-22 hash:ip family inet6 timeout 0",
    ]);
  });

  it("when more than 15 ports are protected then multiport rules are split in chunks of 15", () => {
    const gate = validateGate({ protectedPorts: Array.from({ length: 20 }, (_, i) => 1000 + i), knockRange: undefined });
    const drops = buildRestoreInput(names, 6, gate)
      .split("\n")
      .filter((l) => l.startsWith("-A tknock-in -p tcp") && l.endsWith("-j DROP"));
    expect(drops.map((l) => l.split(" ")[7]?.split(",").length)).toEqual([15, 5]);
  });

  it("when grants are built then each is one element per protocol with its time in the comment, plus the forward set of a protected port", () => {
    expect(buildGrantLines(names, [{ src: "FD18::2", port: 22, openSeconds: 30, client: "alice" }], [22])).toEqual([
      'add tknock-g6 fd18::2,tcp:22 timeout 30 comment "30 alice"',
      'add tknock-g6 fd18::2,udp:22 timeout 30 comment "30 alice"',
      "add tknock-f6-22 fd18::2 timeout 30",
    ]);
    expect(codeOf(() => buildGrantLines(names, [{ src: "198.18.0.1 timeout 0", port: 22, openSeconds: 30 }], []))).toBe("TKNOCK_INVALID_GRANT");
  });

  it("when ipset save lists a grant's two elements then it is one grant with its time left, full time and client", () => {
    const text = [
      "create tknock-g4 hash:ip,port family inet hashsize 1024 maxelem 65536 timeout 0 comment bucketsize 12 initval 0x1",
      'add tknock-g4 198.18.0.1,tcp:22 timeout 27 comment "30 alice"',
      'add tknock-g4 198.18.0.1,udp:22 timeout 26 comment "30 alice"',
      "add tknock-g4 198.18.0.9,tcp:2222 timeout 5",
    ].join("\n");
    expect(parseGrantSave(text)).toEqual([
      { src: "198.18.0.1", port: 22, openSeconds: 30, client: "alice", expiresInSeconds: 27 },
      { src: "198.18.0.9", port: 2222, openSeconds: 5, expiresInSeconds: 5 },
    ]);
  });

  it("when the prefix is not a plain lowercase word then it is refused with TKNOCK_INVALID_GATE", () => {
    for (const bad of ["Tknock", "tk-nock", "a".repeat(17), "tk;x"]) expect(codeOf(() => iptablesNames(bad))).toBe("TKNOCK_INVALID_GATE");
  });
});
