import assert from "node:assert/strict";
import { BlockList } from "node:net";
import fc from "fast-check";
import { type Cidr, cidrContains, parseCidr } from "../../../lib/server/cidr.ts";

/** A parsed network as `address-bytes/prefix` in hex groups, for compact tables. */
function show(cidr: Cidr): string {
  return `v${cidr.family} ${
    Array.from(cidr.bytes, (b) => b.toString(16)).join(".")
  }/${cidr.prefix}`;
}

const PARSES: [string, string][] = [
  ["127.0.0.0/8", "v4 7f.0.0.0/8"],
  ["10.1.2.3/8", "v4 a.0.0.0/8"],
  ["192.168.1.77", "v4 c0.a8.1.4d/32"],
  ["0.0.0.0/0", "v4 0.0.0.0/0"],
  ["172.16.0.0/12", "v4 ac.10.0.0/12"],
  ["255.255.255.255/32", "v4 ff.ff.ff.ff/32"],
  [" 10.0.0.0/8 ", "v4 a.0.0.0/8"],
  ["::1", "v6 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1/128"],
  ["::/0", "v6 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0/0"],
  ["2001:db8::/32", "v6 20.1.d.b8.0.0.0.0.0.0.0.0.0.0.0.0/32"],
  ["2001:DB8:0:0:1:2:3:4/64", "v6 20.1.d.b8.0.0.0.0.0.0.0.0.0.0.0.0/64"],
  ["fe80::/10", "v6 fe.80.0.0.0.0.0.0.0.0.0.0.0.0.0.0/10"],
  ["1:2:3:4:5:6:7:8", "v6 0.1.0.2.0.3.0.4.0.5.0.6.0.7.0.8/128"],
  ["1:2:3:4:5:6:7::", "v6 0.1.0.2.0.3.0.4.0.5.0.6.0.7.0.0/128"],
  ["::2:3:4:5:6:7:8", "v6 0.0.0.2.0.3.0.4.0.5.0.6.0.7.0.8/128"],
  ["64:ff9b::192.0.2.33/120", "v6 0.64.ff.9b.0.0.0.0.0.0.0.0.c0.0.2.0/120"],
  // IPv4-mapped networks become the IPv4 network they carry.
  ["::ffff:127.0.0.0/104", "v4 7f.0.0.0/8"],
  ["::ffff:10.1.2.3", "v4 a.1.2.3/32"],
  ["::ffff:7f00:1", "v4 7f.0.0.1/32"],
  // Wider than the mapped block: stays IPv6.
  ["::ffff:0:0/80", "v6 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0/80"],
];

Deno.test("parseCidr parses IPv4, IPv6 with :: and IPv4 tails, bare addresses", () => {
  for (const [text, expected] of PARSES) {
    const cidr = parseCidr(text);
    assert.equal(show(cidr), expected, text);
    assert.equal(cidr.source, text);
  }
});

const REJECTS: [string, string][] = [
  ["", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["localhost", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["10.0.0/8", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["10.0.0.256", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["010.0.0.1", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["10.0.0.1.2", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["1::2::3", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["1:2:3:4:5:6:7:8:9", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["1:2:3:4:5:6:7", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["1:2:3:4:5:6:7:8::", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["12345::", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["g::1", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  [":::", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["1.2.3.4::", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["fe80::1%eth0", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["[::1]/128", "expected an IPv4 or IPv6 address, optionally with /PREFIX"],
  ["10.0.0.0/33", "prefix must be a number from 0 to 32"],
  ["10.0.0.0/", "prefix must be a number from 0 to 32"],
  ["10.0.0.0/08", "prefix must be a number from 0 to 32"],
  ["10.0.0.0/-1", "prefix must be a number from 0 to 32"],
  ["10.0.0.0/8/8", "prefix must be a number from 0 to 32"],
  ["::/129", "prefix must be a number from 0 to 128"],
];

Deno.test("parseCidr rejects a bad value with a SyntaxError naming it", () => {
  for (const [text, reason] of REJECTS) {
    assert.throws(
      () => parseCidr(text),
      new SyntaxError(`Cannot parse CIDR "${text}": ${reason}`),
      text,
    );
  }
});

const CONTAINS: [string[], string, boolean][] = [
  [["127.0.0.0/8"], "127.0.0.1", true],
  [["127.0.0.0/8"], "127.255.255.255", true],
  [["127.0.0.0/8"], "128.0.0.1", false],
  [["127.0.0.0/8"], "::ffff:127.0.0.1", true],
  [["127.0.0.0/8"], "::FFFF:127.0.0.1", true],
  [["127.0.0.0/8"], "::ffff:7f00:1", true],
  [["127.0.0.0/8"], "::1", false],
  [["::ffff:127.0.0.0/104"], "127.0.0.1", true],
  [["::1"], "::1", true],
  [["::1"], "0:0:0:0:0:0:0:1", true],
  [["::1"], "127.0.0.1", false],
  [["::/0"], "10.0.0.1", false],
  [["::/0"], "2001:db8::1", true],
  [["0.0.0.0/0"], "203.0.113.9", true],
  [["0.0.0.0/0"], "::ffff:203.0.113.9", true],
  [["0.0.0.0/0"], "2001:db8::1", false],
  [["2001:db8::/32"], "2001:db8:ffff::1", true],
  [["2001:db8::/32"], "2001:db9::1", false],
  [["fe80::/10"], "fe80::1%eth0", true],
  [["fe80::/10"], "febf::1", true],
  [["fe80::/10"], "fec0::1", false],
  [["192.168.1.0/25"], "192.168.1.127", true],
  [["192.168.1.0/25"], "192.168.1.128", false],
  [["10.0.0.0/8", "192.168.0.0/16"], "192.168.3.4", true],
  [[], "127.0.0.1", false],
  [["0.0.0.0/0", "::/0"], "not-an-address", false],
  [["0.0.0.0/0", "::/0"], "", false],
];

Deno.test("cidrContains matches addresses, IPv4-mapped ones as IPv4", () => {
  for (const [networks, address, expected] of CONTAINS) {
    assert.equal(
      cidrContains(networks.map(parseCidr), address),
      expected,
      `${networks.join(",")} ∋ ${address}`,
    );
  }
});

Deno.test("cidrContains agrees with node:net BlockList on random IPv4 and IPv6 networks", () => {
  const v4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.ipV4());
  const v6 = fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 }), fc.ipV6());
  for (const [arbitrary, type] of [[v4, "ipv4"], [v6, "ipv6"]] as const) {
    fc.assert(
      fc.property(arbitrary, ([network, prefix, address]) => {
        const cidr = parseCidr(`${network}/${prefix}`);
        const reference = new BlockList();
        reference.addSubnet(network, prefix, type);
        const blockListSaysIn = reference.check(address, type);
        // The one difference by design: mapped addresses are IPv4 here, so an
        // IPv6 network never holds them unless it is itself a mapped one.
        if (type === "ipv6" && cidr.family === 4) return;
        if (type === "ipv6" && /^::ffff:/i.test(address) && address.includes(".")) return;
        assert.equal(
          cidrContains([cidr], address),
          blockListSaysIn,
          `${network}/${prefix} ∋ ${address}`,
        );
      }),
      { numRuns: 500 },
    );
  }
});
