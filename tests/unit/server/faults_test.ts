import assert from "node:assert/strict";
import {
  type FaultAction,
  FaultPlan,
  type FaultRule,
  type FaultStage,
  parseFaultRule,
} from "../../../lib/server/faults.ts";

/** The parts of a rule a table states; `source` is always the input. */
type Parsed = Omit<FaultRule, "source">;

const PARSES: [string, Parsed][] = [
  [
    "rcpt~^bounce@ 550 5.1.1 No such user",
    {
      stage: "rcpt",
      pattern: /^bounce@/,
      action: { type: "reply", reply: { code: 550, enhanced: "5.1.1", lines: ["No such user"] } },
    },
  ],
  [
    "data#3 451 4.3.0 Try again later",
    {
      stage: "data",
      occurrence: 3,
      action: {
        type: "reply",
        reply: { code: 451, enhanced: "4.3.0", lines: ["Try again later"] },
      },
    },
  ],
  ["mail delay 2s", { stage: "mail", action: { type: "delay", ms: 2000 } }],
  ["mail delay 250ms", { stage: "mail", action: { type: "delay", ms: 250 } }],
  ["mail delay 0", { stage: "mail", action: { type: "delay", ms: 0 } }],
  [
    "connect 421 4.3.2 Not now",
    {
      stage: "connect",
      action: { type: "reply", reply: { code: 421, enhanced: "4.3.2", lines: ["Not now"] } },
    },
  ],
  ["helo disconnect", { stage: "helo", action: { type: "disconnect" } }],
  [
    "auth#2~^bob$ 535 5.7.8 Bad credentials",
    {
      stage: "auth",
      occurrence: 2,
      pattern: /^bob$/,
      action: {
        type: "reply",
        reply: { code: 535, enhanced: "5.7.8", lines: ["Bad credentials"] },
      },
    },
  ],
  // Enhanced code left out: derived from the reply code's class.
  [
    "rcpt 452 Too many",
    {
      stage: "rcpt",
      action: { type: "reply", reply: { code: 452, enhanced: "4.0.0", lines: ["Too many"] } },
    },
  ],
  [
    "data 554",
    {
      stage: "data",
      action: { type: "reply", reply: { code: 554, enhanced: "5.0.0", lines: ["Injected fault"] } },
    },
  ],
  [
    "data 554 5.6.0",
    {
      stage: "data",
      action: { type: "reply", reply: { code: 554, enhanced: "5.6.0", lines: ["Injected fault"] } },
    },
  ],
  // Stage and keywords are case-insensitive; the text keeps its inner spacing.
  [
    "  RCPT  550   5.1.1  No  such  user  ",
    {
      stage: "rcpt",
      action: { type: "reply", reply: { code: 550, enhanced: "5.1.1", lines: ["No  such  user"] } },
    },
  ],
  ["Mail DELAY 1m", { stage: "mail", action: { type: "delay", ms: 60_000 } }],
  // The regex may hold '#' and '~': the selector ends only at the first space.
  [
    "rcpt#1~a#b~c 550 5.1.1 odd",
    {
      stage: "rcpt",
      occurrence: 1,
      pattern: /a#b~c/,
      action: { type: "reply", reply: { code: 550, enhanced: "5.1.1", lines: ["odd"] } },
    },
  ],
];

Deno.test("parseFaultRule parses each documented form", () => {
  for (const [text, expected] of PARSES) {
    assert.deepEqual(parseFaultRule(text), { ...expected, source: text }, text);
  }
});

const REJECTS: [string, string][] = [
  ["", "rule is empty"],
  ["rcpt", "expected STAGE[#N][~REGEX] ACTION, found no action"],
  ["relay 550 5.1.1 x", 'unknown stage "relay", expected connect, helo, mail, rcpt, data, auth'],
  ["rcpt#0 550 x", 'occurrence "#0" must be 1 or more'],
  [
    "rcpt#99999999999999999999 550 x",
    'occurrence "#99999999999999999999" is too large (at most 2^53 - 1)',
  ],
  ["rcpt#000 550 x", 'occurrence "#000" must be 1 or more'],
  ["rcpt#x 550 x", 'expected STAGE[#N][~REGEX] before the action, found "rcpt#x"'],
  ["rcpt~ 550 x", 'expected STAGE[#N][~REGEX] before the action, found "rcpt~"'],
  ["rcpt~(a 550 x", 'invalid regular expression "(a": '],
  ["rcpt 250 2.1.5 Ok", "reply code 250 must be 4xx or 5xx"],
  ["rcpt 354 go", "reply code 354 must be 4xx or 5xx"],
  ["rcpt 55 x", 'unknown action "55", expected a 4xx/5xx reply, "delay DURATION" or "disconnect"'],
  ["rcpt bounce", 'unknown action "bounce", expected a 4xx/5xx reply'],
  ["rcpt 550 4.1.1 x", 'enhanced code "4.1.1" does not agree with reply code 550'],
  ["rcpt 550 5.1234.1 x", 'enhanced code "5.1234.1" is not RFC 3463 (class.subject.detail)'],
  ["rcpt 550 3.1.1 x", 'enhanced code "3.1.1" is not RFC 3463 (class.subject.detail)'],
  ["mail delay", 'expected "delay DURATION", e.g. delay 2s'],
  ["mail delay 2 s", 'expected "delay DURATION", e.g. delay 2s'],
  ["mail delay 2x", 'Cannot parse "2x": expected a duration like 250ms, 30s, 5m or 1h'],
  ["mail disconnect now", '"disconnect" takes nothing after it, found "now"'],
  ["rcpt 550 5.1.1 a\r\n250 ok", "contains a control character"],
];

Deno.test("parseFaultRule rejects a bad rule with a SyntaxError naming it and the problem", () => {
  for (const [text, reason] of REJECTS) {
    assert.throws(() => parseFaultRule(text), (error: unknown) => {
      assert.ok(error instanceof SyntaxError, text);
      assert.ok(
        error.message.startsWith(`Cannot parse fault rule "${text}": ${reason}`),
        `${JSON.stringify(text)} → ${error.message}`,
      );
      return true;
    });
  }
});

/** Runs `calls` through a plan of `rules`; returns what each call got, as compact strings. */
function outcomes(rules: string[], calls: [FaultStage, string?][]): string[] {
  const plan = new FaultPlan(rules.map(parseFaultRule));
  return calls.map(([stage, argument]) => describe(plan.match(stage, argument)));
}

function describe(action: FaultAction | null): string {
  if (action === null) return "-";
  switch (action.type) {
    case "reply":
      return `${action.reply.code} ${action.reply.enhanced} ${action.reply.lines.join("|")}`;
    case "delay":
      return `delay ${action.ms}`;
    case "disconnect":
      return "disconnect";
  }
}

const MATCHES: {
  name: string;
  rules: string[];
  calls: [FaultStage, string?][];
  expect: string[];
}[] = [
  {
    name: "a rule without #N or ~REGEX fires on every occurrence of its stage only",
    rules: ["mail 451 4.3.0 busy"],
    calls: [["helo", "x"], ["mail", "a@b"], ["rcpt", "c@d"], ["mail", ""]],
    expect: ["-", "451 4.3.0 busy", "-", "451 4.3.0 busy"],
  },
  {
    name: "#N fires on the Nth occurrence of the stage only",
    rules: ["data#3 451 4.3.0 Try again later"],
    calls: [["data"], ["data"], ["mail", "a@b"], ["data"], ["data"]],
    expect: ["-", "-", "-", "451 4.3.0 Try again later", "-"],
  },
  {
    name: "every occurrence counts, also those a ~REGEX rule skipped",
    rules: ["rcpt#2~^x@ 550 5.1.1 no"],
    calls: [["rcpt", "x@a"], ["rcpt", "x@b"], ["rcpt", "x@c"]],
    expect: ["-", "550 5.1.1 no", "-"],
  },
  {
    name: "#N combined with ~REGEX needs both",
    rules: ["rcpt#2~^x@ 550 5.1.1 no"],
    calls: [["rcpt", "y@a"], ["rcpt", "y@b"], ["rcpt", "x@c"]],
    expect: ["-", "-", "-"],
  },
  {
    name: "~REGEX is an unanchored search unless anchored",
    rules: ["rcpt~bounce 550 5.1.1 no", "mail~^a@example\\.com$ 553 5.1.8 bad sender"],
    calls: [
      ["rcpt", "x-bounce-y@example.com"],
      ["rcpt", "ok@example.com"],
      ["mail", "a@example.com"],
      ["mail", "ba@example.com"],
      ["mail", "a@exampleXcom"],
    ],
    expect: ["550 5.1.1 no", "-", "553 5.1.8 bad sender", "-", "-"],
  },
  {
    name: "a ~REGEX rule never matches a call without an argument",
    rules: ["data~.* 451 4.3.0 x"],
    calls: [["data"], ["data", ""]],
    expect: ["-", "451 4.3.0 x"],
  },
  {
    name: "the first matching rule wins, in the order given",
    rules: ["rcpt~^a 550 5.1.1 first", "rcpt 451 4.3.0 second", "rcpt disconnect"],
    calls: [["rcpt", "a@x"], ["rcpt", "b@x"]],
    expect: ["550 5.1.1 first", "451 4.3.0 second"],
  },
  {
    name: "a #N rule before a general one only takes its own occurrence",
    rules: ["helo#2 disconnect", "helo delay 1s"],
    calls: [["helo", "a"], ["helo", "b"], ["helo", "c"]],
    expect: ["delay 1000", "disconnect", "delay 1000"],
  },
  {
    name: "stages count separately",
    rules: ["auth#1 535 5.7.8 no", "connect#2 421 4.3.2 later"],
    calls: [["connect", "127.0.0.1"], ["auth", "bob"], ["connect", "127.0.0.1"], ["auth", "bob"]],
    expect: ["-", "535 5.7.8 no", "421 4.3.2 later", "-"],
  },
  {
    name: "no rules: nothing ever matches",
    rules: [],
    calls: [["connect"], ["helo", "x"], ["mail", ""], ["rcpt", "a@b"], ["data"], ["auth", "u"]],
    expect: ["-", "-", "-", "-", "-", "-"],
  },
];

for (const { name, rules, calls, expect } of MATCHES) {
  Deno.test(`FaultPlan.match: ${name}`, () => {
    assert.deepEqual(outcomes(rules, calls), expect);
  });
}

Deno.test("FaultPlan.match returns a fresh action the caller may change", () => {
  const plan = new FaultPlan([parseFaultRule("rcpt 550 5.1.1 no")]);
  const first = plan.match("rcpt", "a@b");
  assert.ok(first?.type === "reply");
  first.reply.lines.push("changed");
  first.reply.code = 250;
  assert.deepEqual(plan.match("rcpt", "a@b"), {
    type: "reply",
    reply: { code: 550, enhanced: "5.1.1", lines: ["no"] },
  });
});

Deno.test("FaultPlan.empty tells whether any rule exists", () => {
  assert.equal(new FaultPlan([]).empty, true);
  assert.equal(new FaultPlan([parseFaultRule("mail disconnect")]).empty, false);
});
