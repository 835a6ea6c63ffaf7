import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Credentials, loadAuthFile, parseAuthFile } from "../../../lib/server/auth_file.ts";

const FILE = [
  "# smtpd users",
  "",
  "alice:wonderland",
  "   ",
  "  # indented comment",
  "bob:pa:ss:word",
  "carol: spaced pass ",
  "dave:#not-a-comment",
].join("\n");

Deno.test("parseAuthFile reads users, keeping passwords verbatim (colons, spaces, #)", () => {
  const credentials = parseAuthFile(FILE, "users.txt");
  assert.equal(credentials.size, 4);
  const cases: [string, string, boolean][] = [
    ["alice", "wonderland", true],
    ["alice", "Wonderland", false],
    ["alice", "wonderland ", false],
    ["bob", "pa:ss:word", true],
    ["bob", "pa", false],
    ["carol", " spaced pass ", true],
    ["carol", "spaced pass", false],
    ["dave", "#not-a-comment", true],
    ["Alice", "wonderland", false],
    ["mallory", "wonderland", false],
    ["mallory", "", false],
    ["", "", false],
  ];
  for (const [user, password, expected] of cases) {
    assert.equal(credentials.check(user, password), expected, `${user}:${password}`);
  }
});

Deno.test("parseAuthFile accepts CRLF line ends and a UTF-8 byte order mark", () => {
  const credentials = parseAuthFile("\uFEFFalice:one\r\nbob:two\r\n", "users.txt");
  assert.equal(credentials.check("alice", "one"), true);
  assert.equal(credentials.check("bob", "two"), true);
  assert.equal(credentials.check("bob", "two\r"), false);
});

Deno.test("parseAuthFile rejects a bad line naming the file and line", () => {
  const cases: [string, string][] = [
    ["alice:one\nno-colon\n", "users.txt:2: expected user:password"],
    [":nouser\n", "users.txt:1: expected user:password"],
    ["alice:\n", "users.txt:1: expected user:password"],
    ["# ok\n\n  bob:two\n", "users.txt:3: expected user:password"],
    ["bad user:x\n", "users.txt:1: expected user:password"],
    ["alice:one\nbob:two\nalice:three\n", 'users.txt:3: user "alice" already defined on line 1'],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseAuthFile(text, "users.txt"), new SyntaxError(message), text);
  }
});

Deno.test("parseAuthFile of an empty file gives no users", () => {
  const credentials = parseAuthFile("# nobody yet\n", "users.txt");
  assert.equal(credentials.size, 0);
  assert.equal(credentials.check("", ""), false);
});

Deno.test("Credentials.checkCramMd5 verifies the RFC 2195 example", () => {
  // RFC 2195 §2: user tim, secret tanstaaftanstaaf.
  const credentials = new Credentials([["tim", "tanstaaftanstaaf"]]);
  const challenge = "<1896.697170952@postoffice.reston.mci.net>";
  const digest = "b913a602c7eda7a495b4e6e7334d3890";
  assert.equal(credentials.checkCramMd5("tim", challenge, digest), true);
  assert.equal(credentials.checkCramMd5("tim", challenge, digest.toUpperCase()), true);
  assert.equal(credentials.checkCramMd5("tim", challenge + " ", digest), false);
  assert.equal(credentials.checkCramMd5("tim", challenge, digest.slice(0, -1) + "1"), false);
  assert.equal(credentials.checkCramMd5("tim", challenge, digest.slice(0, 16)), false);
  assert.equal(credentials.checkCramMd5("tim", challenge, ""), false);
  assert.equal(credentials.checkCramMd5("tom", challenge, digest), false);
});

Deno.test("Credentials.checkCramMd5 rejects an unknown user even with the empty-key digest", () => {
  const credentials = new Credentials([["tim", "secret"]]);
  const challenge = "<1.2@host>";
  const emptyKey = createHmac("md5", "").update(challenge).digest("hex");
  assert.equal(credentials.checkCramMd5("nobody", challenge, emptyKey), false);
  const right = createHmac("md5", "secret").update(challenge).digest("hex");
  assert.equal(credentials.checkCramMd5("tim", challenge, right), true);
});

Deno.test("loadAuthFile reads a file; a missing one throws Deno.errors.NotFound", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/users.txt`;
  await Deno.writeTextFile(path, "alice:one\n");
  const credentials = await loadAuthFile(path);
  assert.equal(credentials.check("alice", "one"), true);
  await Deno.writeTextFile(path, "alice:one\nbroken\n");
  await assert.rejects(loadAuthFile(path), new SyntaxError(`${path}:2: expected user:password`));
  await assert.rejects(loadAuthFile(`${dir}/missing.txt`), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});
