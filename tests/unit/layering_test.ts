/**
 * Layering (STYLE §2): `cli → mod → server → net → smtp`, `spool` beside
 * `net`. Parses the imports of every `lib/**\/*.ts` (type-only imports too:
 * they couple layers just the same) and fails on a forbidden one, and keeps
 * the pure core pure: no `Deno.*`, timers, `Date` or `Math.random` in
 * `lib/smtp`, so it stays testable byte by byte without sockets or clocks.
 */

import assert from "node:assert/strict";
import { repoPath } from "../helpers/launcher.ts";

type TokenKind = "ident" | "string" | "punct" | "other";
interface Token {
  kind: TokenKind;
  value: string;
}

/** After these, `/` starts a regex literal rather than a division. */
const REGEX_AFTER_KEYWORDS = new Set([
  "return",
  "typeof",
  "case",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "else",
  "do",
  "yield",
  "await",
]);

/**
 * A small TypeScript tokenizer: enough to drop comments, see string literals
 * (import specifiers) as strings, and never mistake the inside of a regex,
 * string or template for code.
 */
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  /** One entry per open template `${`: the brace depth inside it. */
  const templateDepth: number[] = [];
  let i = 0;
  const readTemplate = () => {
    // From just after "`" or "}", up to the closing "`" or the next "${".
    let s = "";
    while (i < src.length) {
      const ch = src[i]!;
      if (ch === "\\") {
        s += src.slice(i, i + 2);
        i += 2;
      } else if (ch === "`") {
        i++;
        out.push({ kind: "string", value: s });
        return;
      } else if (ch === "$" && src[i + 1] === "{") {
        i += 2;
        out.push({ kind: "string", value: s });
        templateDepth.push(0);
        return;
      } else {
        s += ch;
        i++;
      }
    }
  };
  while (i < src.length) {
    const ch = src[i]!;
    const next = src[i + 1];
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "/" && next === "/") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (ch === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      i = end < 0 ? src.length : end + 2;
    } else if (ch === '"' || ch === "'") {
      let s = "";
      i++;
      while (i < src.length && src[i] !== ch && src[i] !== "\n") {
        if (src[i] === "\\") {
          s += src[i + 1] ?? "";
          i += 2;
        } else s += src[i++];
      }
      i++;
      out.push({ kind: "string", value: s });
    } else if (ch === "`") {
      i++;
      readTemplate();
    } else if (ch === "/") {
      const prev = out[out.length - 1];
      const division = prev !== undefined &&
        ((prev.kind === "ident" && !REGEX_AFTER_KEYWORDS.has(prev.value)) ||
          prev.kind === "other" || (prev.kind === "punct" && /[)\]}]/.test(prev.value)));
      if (division) {
        out.push({ kind: "punct", value: "/" });
        i++;
      } else {
        // Regex literal: to the closing "/" outside a character class, then flags.
        let inClass = false;
        i++;
        while (i < src.length && src[i] !== "\n") {
          const c = src[i]!;
          if (c === "\\") i++;
          else if (c === "[") inClass = true;
          else if (c === "]") inClass = false;
          else if (c === "/" && !inClass) break;
          i++;
        }
        i++;
        while (i < src.length && /\w/.test(src[i]!)) i++;
        out.push({ kind: "other", value: "regex" });
      }
    } else if (/[A-Za-z_$]/.test(ch)) {
      const m = /^[\w$]+/.exec(src.slice(i, i + 256))!;
      out.push({ kind: "ident", value: m[0] });
      i += m[0].length;
    } else if (/[0-9]/.test(ch)) {
      const m = /^[\w.]+/.exec(src.slice(i, i + 256))!;
      out.push({ kind: "other", value: m[0] });
      i += m[0].length;
    } else if (ch === "{" && templateDepth.length > 0) {
      templateDepth[templateDepth.length - 1]!++;
      out.push({ kind: "punct", value: ch });
      i++;
    } else if (ch === "}" && templateDepth.length > 0 && templateDepth.at(-1) === 0) {
      templateDepth.pop();
      i++;
      readTemplate();
    } else {
      if (ch === "}" && templateDepth.length > 0) templateDepth[templateDepth.length - 1]!--;
      out.push({ kind: "punct", value: ch });
      i++;
    }
  }
  return out;
}

/** Module specifiers of static imports, re-exports, side-effect and dynamic imports. */
function importSpecifiers(src: string): string[] {
  const t = tokenize(src);
  const specs: string[] = [];
  for (let k = 0; k < t.length; k++) {
    const tok = t[k]!;
    if (tok.kind !== "ident" || (tok.value !== "import" && tok.value !== "export")) continue;
    if (t[k - 1]?.value === ".") continue; // a property named import/export
    const next = t[k + 1];
    if (tok.value === "import" && next?.kind === "string") {
      specs.push(next.value); // import "x";
      continue;
    }
    if (tok.value === "import" && next?.value === "(" && t[k + 2]?.kind === "string") {
      specs.push(t[k + 2]!.value); // import("x")
      continue;
    }
    if (tok.value === "import" && next?.value === ".") continue; // import.meta
    if (
      tok.value === "export" &&
      !(next?.value === "{" || next?.value === "*" ||
        (next?.value === "type" && (t[k + 2]?.value === "{" || t[k + 2]?.value === "*")))
    ) continue; // export const/function/class…: a declaration, not a re-export
    // import … from "x" / export { … } from "x": scan to `from` or the end of the statement.
    for (let j = k + 1; j < t.length && j < k + 2000; j++) {
      const tj = t[j]!;
      if (tj.kind === "punct" && tj.value === ";") break;
      if (tj.kind === "ident" && tj.value === "from" && t[j + 1]?.kind === "string") {
        specs.push(t[j + 1]!.value);
        break;
      }
      if (tj.kind === "ident" && (tj.value === "import" || tj.value === "export") && j > k) break;
    }
  }
  return specs;
}

/** Globals the pure core must not touch, found in code (not comments or strings). */
function impureUses(src: string): string[] {
  const t = tokenize(src);
  const found: string[] = [];
  for (let k = 0; k < t.length; k++) {
    const tok = t[k]!;
    if (tok.kind !== "ident") continue;
    const prev = t[k - 1];
    const member = prev?.value === "." && t[k - 2]?.value !== "globalThis";
    if (member) continue;
    if (tok.value === "Deno" && t[k + 1]?.value === ".") found.push(`Deno.${t[k + 2]?.value}`);
    if (tok.value === "setTimeout" || tok.value === "setInterval") found.push(tok.value);
    if (tok.value === "Date") found.push("Date");
    if (tok.value === "Math" && t[k + 1]?.value === "." && t[k + 2]?.value === "random") {
      found.push("Math.random");
    }
  }
  return found;
}

/** Repository-relative path of a local import, or the bare specifier as written. */
function resolve(file: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  const parts = file.split("/").slice(0, -1);
  for (const seg of spec.split("/")) {
    if (seg === "..") parts.pop();
    else if (seg !== ".") parts.push(seg);
  }
  return parts.join("/");
}

interface Layer {
  name: string;
  owns: (file: string) => boolean;
  allows: (dep: string) => boolean;
}

const inDir = (dir: string) => (p: string) => p.startsWith(dir);
const isNode = (p: string) => p.startsWith("node:");
const npmNames = (): string[] =>
  Object.keys(JSON.parse(Deno.readTextFileSync(repoPath("deno.json"))).imports ?? {});

/** STYLE §2 as a table; every file under lib/ must belong to exactly one layer. */
const LAYERS: Layer[] = [
  { name: "lib/smtp", owns: inDir("lib/smtp/"), allows: inDir("lib/smtp/") },
  {
    name: "lib/spool",
    owns: inDir("lib/spool/"),
    allows: (d) =>
      d.startsWith("lib/spool/") || d === "lib/bytes.ts" || d === "lib/native_memory.ts" ||
      d === "lib/os_error.ts" || d === "node:crypto" ||
      d === "node:url",
  },
  {
    name: "lib/net",
    owns: inDir("lib/net/"),
    // @peculiar/x509 (and the reflect-metadata polyfill it requires) make the
    // ephemeral --tls-self-signed certificate; node:crypto alone cannot.
    allows: (d) =>
      d.startsWith("lib/net/") || d.startsWith("lib/smtp/") || d === "lib/log.ts" ||
      d === "lib/units.ts" || d === "lib/bytes.ts" ||
      [
        "node:net",
        "node:tls",
        "node:stream",
        "node:events",
        "node:crypto",
        "@peculiar/x509",
        "reflect-metadata",
      ]
        .includes(d),
  },
  {
    name: "lib/cli",
    owns: inDir("lib/cli/"),
    allows: (d) => d.startsWith("lib/cli/") || d === "lib/mod.ts" || d === "node:util",
  },
  {
    name: "lib/server and lib/mod.ts",
    owns: (f) => f.startsWith("lib/server/") || f === "lib/mod.ts",
    allows: (d) =>
      (d.startsWith("lib/") && !d.startsWith("lib/cli/")) || isNode(d) || npmNames().includes(d),
  },
  {
    name: "lib/bytes.ts and lib/os_error.ts (the leaves below the leaves)",
    owns: (f) => f === "lib/bytes.ts" || f === "lib/os_error.ts",
    allows: isNode,
  },
  {
    name: "lib/log.ts, lib/units.ts and lib/native_memory.ts (leaves)",
    owns: (f) => ["lib/log.ts", "lib/units.ts", "lib/native_memory.ts"].includes(f),
    // log.ts encodes its lines with bytes.ts's shared buffer.
    allows: (d) => isNode(d) || d === "lib/bytes.ts",
  },
];

async function libFiles(dir = "lib"): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(repoPath(dir))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await libFiles(p));
    else if (e.isFile && p.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

Deno.test("layering: every lib file belongs to exactly one layer", async () => {
  const files = await libFiles();
  assert.ok(files.length > 0);
  const bad = files.filter((f) => LAYERS.filter((l) => l.owns(f)).length !== 1);
  assert.deepEqual(bad, [], "add a rule to LAYERS (STYLE §2) for new places in lib/");
});

for (const layer of LAYERS) {
  Deno.test(`layering: ${layer.name} imports only what STYLE §2 allows`, async () => {
    const violations: string[] = [];
    for (const file of (await libFiles()).filter(layer.owns)) {
      const src = await Deno.readTextFile(repoPath(file));
      for (const spec of importSpecifiers(src)) {
        const dep = resolve(file, spec);
        if (/^(https?|jsr):/.test(dep) || !layer.allows(dep)) violations.push(`${file} → ${spec}`);
      }
    }
    assert.deepEqual(violations, []);
  });
}

Deno.test("layering: lib/smtp uses no Deno.*, timers, Date or Math.random", async () => {
  const violations: string[] = [];
  for (const file of (await libFiles()).filter(inDir("lib/smtp/"))) {
    const uses = impureUses(await Deno.readTextFile(repoPath(file)));
    for (const u of new Set(uses)) violations.push(`${file}: ${u}`);
  }
  assert.deepEqual(violations, []);
});

Deno.test("importSpecifiers finds every import form and ignores comments and strings", () => {
  const src = `
    import { a, type B } from "./a.ts";
    import type { C } from '../c.ts';
    import * as d from "node:net";
    import "reflect-metadata";
    export { e } from "./e.ts";
    export * from "./f.ts";
    export type { G } from "./g.ts";
    const h = await import("./h.ts");
    // import { x } from "./comment.ts";
    /* export * from "./block.ts"; */
    const s = 'import { y } from "./string.ts"';
    const re = /["']import "z"/g;
    const tpl = \`\${a} import "./tpl.ts" \${ { b: 1 }.b }\`;
    export const i = "./not-an-import.ts";
    const m = import.meta.url;
  `;
  assert.deepEqual(importSpecifiers(src), [
    "./a.ts",
    "../c.ts",
    "node:net",
    "reflect-metadata",
    "./e.ts",
    "./f.ts",
    "./g.ts",
    "./h.ts",
  ]);
});

Deno.test("impureUses sees code, not comments, strings or members", () => {
  const src = `
    // Deno.now() in a comment, new Date() too
    const t = "setTimeout Date Math.random";
    const x = obj.Date + a / b / c;
    const d = Deno.env.get("X");
    const r = Math.random() + Date.now();
    setTimeout(() => {}, 1);
  `;
  assert.deepEqual(impureUses(src), ["Deno.env", "Math.random", "Date", "setTimeout"]);
});
