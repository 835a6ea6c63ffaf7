import { strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { decodeLine, lowerAscii, upperAscii } from "../../../lib/smtp/_utf8.ts";

const esc = (b: number) => String.fromCharCode(0xdc00 + b);

Deno.test("decodeLine decodes well-formed UTF-8 as is", () => {
  const text = "MAIL FROM:<ü@exämple.com> 😀 \u{10FFFF}";
  strictEqual(decodeLine(new TextEncoder().encode(text)), text);
  // U+FFFD sent as such is a character like any other.
  strictEqual(decodeLine(Uint8Array.of(0xef, 0xbf, 0xbd)), "\ufffd");
});

Deno.test("decodeLine marks every malformed byte as a lone surrogate (RFC 3629)", () => {
  const cases: [number[], string][] = [
    [[0x61, 0xff, 0xfe, 0x62], `a${esc(0xff)}${esc(0xfe)}b`],
    // Overlong "/" (C0 AF) and overlong three-octet forms.
    [[0xc0, 0xaf], `${esc(0xc0)}${esc(0xaf)}`],
    [[0xe0, 0x80, 0xaf], `${esc(0xe0)}${esc(0x80)}${esc(0xaf)}`],
    // A UTF-16 surrogate encoded (U+D800), and above U+10FFFF.
    [[0xed, 0xa0, 0x80], `${esc(0xed)}${esc(0xa0)}${esc(0x80)}`],
    [[0xf4, 0x90, 0x80, 0x80], `${esc(0xf4)}${esc(0x90)}${esc(0x80)}${esc(0x80)}`],
    // A stray continuation byte, then a truncated sequence before a good one.
    [[0x80, 0x41], `${esc(0x80)}A`],
    [[0xe2, 0x82, 0xc3, 0xbc], `${esc(0xe2)}${esc(0x82)}ü`],
    [[0xf0, 0x9f, 0x98], `${esc(0xf0)}${esc(0x9f)}${esc(0x98)}`],
  ];
  for (const [bytes, expected] of cases) {
    const out = decodeLine(Uint8Array.from(bytes));
    strictEqual(out, expected, bytes.map((b) => b.toString(16)).join(" "));
    strictEqual(out.isWellFormed(), false);
  }
});

Deno.test("upperAscii and lowerAscii map ASCII letters and leave every other character", () => {
  strictEqual(upperAscii("mail"), "MAIL");
  strictEqual(upperAscii("\u017ftart\u0131ls \ufb06 \u00e9"), "\u017fTART\u0131LS \ufb06 \u00e9");
  strictEqual(lowerAscii("POSTMASTER@MX"), "postmaster@mx");
  strictEqual(lowerAscii("\u212AX \u0130 \u00c9"), "\u212Ax \u0130 \u00c9");
  const cases = [[upperAscii, 0x61, -0x20], [lowerAscii, 0x41, 0x20]] as const;
  for (const [map, first, shift] of cases) {
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (text) => {
      const mapped = map(text);
      strictEqual(mapped.length, text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        strictEqual(mapped.charCodeAt(i), c >= first && c < first + 26 ? c + shift : c);
      }
    }));
  }
});
