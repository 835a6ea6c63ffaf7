import assert from "node:assert/strict";
import { fit, formatListHeader, formatListRow } from "../../../lib/cli/list.ts";

const META = {
  id: "01KAQ3Z9X8M4N5P6Q7R8S9T0VW",
  receivedAt: "2026-11-23T06:53:00.123Z",
  mailFrom: "alice@example.com",
  rcptTo: ["bob@example.com", "carol@example.org"],
  size: 1234,
  headers: { subject: "Hello" },
};

Deno.test("formatListHeader names the columns in SPEC order", () => {
  assert.deepEqual(formatListHeader().split(/\s+/), [
    "ID",
    "RECEIVED",
    "FROM",
    "TO",
    "SUBJECT",
    "SIZE",
  ]);
});

Deno.test("formatListRow lines up under the header", () => {
  const header = formatListHeader();
  const row = formatListRow(META);
  assert.equal(row.length, header.length);
  for (const column of ["RECEIVED", "FROM", "TO", "SUBJECT"]) {
    const at = header.indexOf(column);
    assert.equal(row[at - 1], " ", column);
    assert.notEqual(row[at], " ", column);
  }
  assert.ok(row.endsWith(" 1234"));
});

Deno.test("formatListRow shows the id whole, UTC seconds, recipients comma-joined", () => {
  const row = formatListRow(META);
  assert.ok(row.startsWith("01KAQ3Z9X8M4N5P6Q7R8S9T0VW  2026-11-23T06:53:00Z  alice@example.com "));
  assert.ok(row.includes("  bob@example.com,carol@examp…  Hello "));
});

Deno.test("formatListRow writes <> for the null sender and nothing for a missing subject", () => {
  const row = formatListRow({ ...META, mailFrom: "", headers: {} });
  assert.match(row, /Z {2}<> +bob@/);
  assert.match(row, /carol@examp… +1234$/);
});

Deno.test("formatListRow cuts long columns with an ellipsis and keeps one line", () => {
  const row = formatListRow({
    ...META,
    mailFrom: "a-very-long-sender-address@subdomain.example.com",
    headers: { subject: "Line one\r\nInjected: \x1b[31mred\x1b[0m and a long tail of words" },
  });
  assert.ok(!/\p{Cc}/u.test(row));
  assert.ok(row.includes("a-very-long-sender-addr… "));
  assert.equal(row.length, formatListHeader().length);
});

Deno.test("formatListRow for a pipe keeps every value whole, still one line", () => {
  const subject = "Quarterly report for the finance department, second half";
  const row = formatListRow({
    ...META,
    mailFrom: "a-very-long-sender-address@subdomain.example.com",
    rcptTo: ["first.recipient@example.com", "second@example.org"],
    headers: { subject: `${subject}\r\n` },
  }, false);
  assert.ok(!/\p{Cc}/u.test(row));
  assert.ok(!row.includes("…"));
  assert.ok(row.includes("  a-very-long-sender-address@subdomain.example.com  "), row);
  assert.ok(row.includes("  first.recipient@example.com,second@example.org  "), row);
  assert.ok(row.includes(`  ${subject}  `), row);
  assert.ok(row.endsWith(" 1234"));
  const short = { ...META, rcptTo: ["bob@example.com"] };
  assert.equal(formatListRow(short, false), formatListRow(short), "values that fit look the same");
});

Deno.test("fit counts terminal columns: wide characters two, combining marks none", () => {
  assert.equal(fit("ab", 4), "ab  ");
  assert.equal(fit("abcde", 4), "abc…");
  assert.equal(fit("😀😀", 4), "😀😀");
  assert.equal(fit("😀😀😀", 4), "😀… ", "an emoji does not fit beside the … : padded");
  assert.equal(fit("日本語", 6), "日本語");
  assert.equal(fit("日本語テキスト", 6), "日本… ");
  assert.equal(
    fit("e\u0301e\u0301", 3),
    "e\u0301e\u0301 ",
    "é as e + combining acute is one column",
  );
  assert.equal(fit("𝒜𝒜𝒜", 3), "𝒜𝒜𝒜", "astral but narrow: one column each");
  assert.equal(fit("😀😀😀", 4, false), "😀😀😀", "uncut in a pipe");
});
