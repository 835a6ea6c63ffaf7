/**
 * `--fault` rules (SPEC §8): deterministic failure on demand. Parsing and
 * matching only; the server applies the action. Pure: no clock, no I/O.
 *
 * Grammar: `STAGE[#N][~REGEX] ACTION`, where ACTION is `CODE [ENHANCED] [TEXT]`
 * (4xx/5xx), `delay DURATION` or `disconnect`.
 *
 * @module
 */

import type { Reply } from "../smtp/events.ts";
import { parseDuration } from "../units.ts";

/** Where a rule applies: `helo` is HELO/EHLO, `data` the end of DATA or the last BDAT. */
export type FaultStage = "connect" | "helo" | "mail" | "rcpt" | "data" | "auth";

/** All stages, in SMTP order. */
export const FAULT_STAGES: readonly FaultStage[] = [
  "connect",
  "helo",
  "mail",
  "rcpt",
  "data",
  "auth",
];

/** What a matching rule makes the server do. */
export type FaultAction =
  | { type: "reply"; reply: Reply }
  | { type: "delay"; ms: number }
  | { type: "disconnect" };

/** One parsed `--fault` rule. */
export interface FaultRule {
  stage: FaultStage;
  /** `#N`: only the Nth occurrence of the stage since start-up (1-based). */
  occurrence?: number;
  /** `~REGEX`: only when the stage's argument matches (a search, not anchored). */
  pattern?: RegExp;
  action: FaultAction;
  /** The rule as written, for logs. */
  source: string;
}

/** Text of a reply rule written without one. */
const DEFAULT_FAULT_TEXT = "Injected fault";
/** `STAGE[#N][~REGEX]`: the selector ends at the first space, so a REGEX has none. */
const SELECTOR_REGEXP = /^([A-Za-z]+)(?:#(\d+))?(?:~(\S+))?$/;
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_REGEXP = /[\x00-\x08\x0a-\x1f\x7f]/;
const CODE_REGEXP = /^[1-9]\d\d$/;
/** RFC 3463 §2: class "." subject (1-3 digits) "." detail (1-3 digits). */
const ENHANCED_REGEXP = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses one `--fault` rule.
 *
 * @param text The rule, e.g. `rcpt~^bounce@ 550 5.1.1 No such user`.
 * @returns The rule; `pattern` and `occurrence` only when given.
 * @throws {SyntaxError} Naming the rule and what is wrong with it.
 *
 * @example Usage
 * ```ts
 * import { parseFaultRule } from "./faults.ts";
 * parseFaultRule("data#3 451 4.3.0 Try again later").occurrence; // 3
 * ```
 */
export function parseFaultRule(text: string): FaultRule {
  const trimmed = text.trim();
  if (trimmed === "") throw ruleError(text, "rule is empty");
  // A CR or LF in the reply text would let the rule forge extra reply lines.
  if (CONTROL_REGEXP.test(trimmed)) throw ruleError(text, "contains a control character");
  const space = trimmed.search(/\s/);
  if (space < 0) throw ruleError(text, "expected STAGE[#N][~REGEX] ACTION, found no action");
  const head = trimmed.slice(0, space);
  const selector = SELECTOR_REGEXP.exec(head);
  if (!selector) {
    throw ruleError(text, `expected STAGE[#N][~REGEX] before the action, found "${head}"`);
  }
  const [, stageText, occurrenceText, patternText] = selector;
  const stage = FAULT_STAGES.find((s) => s === stageText!.toLowerCase());
  if (stage === undefined) {
    throw ruleError(text, `unknown stage "${stageText}", expected ${FAULT_STAGES.join(", ")}`);
  }
  const rule: FaultRule = {
    stage,
    action: parseAction(text, trimmed.slice(space).trim()),
    source: text,
  };
  if (occurrenceText !== undefined) {
    const occurrence = Number(occurrenceText);
    if (occurrence < 1) throw ruleError(text, `occurrence "#${occurrenceText}" must be 1 or more`);
    if (!Number.isSafeInteger(occurrence)) {
      throw ruleError(text, `occurrence "#${occurrenceText}" is too large (at most 2^53 - 1)`);
    }
    rule.occurrence = occurrence;
  }
  if (patternText !== undefined) {
    try {
      // No flags: `g`/`y` would make test() stateful from one call to the next.
      rule.pattern = new RegExp(patternText);
    } catch (e: unknown) {
      const reason = e instanceof Error ? e.message : String(e);
      throw ruleError(text, `invalid regular expression "${patternText}": ${reason}`);
    }
  }
  return rule;
}

function ruleError(rule: string, reason: string): SyntaxError {
  return new SyntaxError(`Cannot parse fault rule "${rule}": ${reason}`);
}

/** Parses ACTION (`text` is the non-empty rest of `rule` after the selector). */
function parseAction(rule: string, text: string): FaultAction {
  const words = text.split(/\s+/);
  const first = words[0]!;
  const keyword = first.toLowerCase();
  if (keyword === "disconnect") {
    if (words.length > 1) {
      throw ruleError(
        rule,
        `"disconnect" takes nothing after it, found "${words.slice(1).join(" ")}"`,
      );
    }
    return { type: "disconnect" };
  }
  if (keyword === "delay") {
    if (words.length !== 2) throw ruleError(rule, 'expected "delay DURATION", e.g. delay 2s');
    try {
      return { type: "delay", ms: parseDuration(words[1]!) };
    } catch (e: unknown) {
      throw ruleError(rule, e instanceof Error ? e.message : String(e));
    }
  }
  if (!CODE_REGEXP.test(first)) {
    throw ruleError(
      rule,
      `unknown action "${first}", expected a 4xx/5xx reply, "delay DURATION" or "disconnect"`,
    );
  }
  const code = Number(first);
  const codeClass = Math.floor(code / 100);
  // A fault is a failure: 2xx/3xx would make the client go on as if accepted.
  if (codeClass !== 4 && codeClass !== 5) {
    throw ruleError(rule, `reply code ${code} must be 4xx or 5xx`);
  }
  // The text keeps its inner spacing: it is everything after the code(s).
  let rest = text.slice(first.length).trim();
  let enhanced = `${codeClass}.0.0`;
  const second = words[1];
  if (second !== undefined && /^\d+\.\d+\.\d+$/.test(second)) {
    const match = ENHANCED_REGEXP.exec(second);
    if (!match) {
      throw ruleError(rule, `enhanced code "${second}" is not RFC 3463 (class.subject.detail)`);
    }
    // RFC 3463 §3: the enhanced code's class must agree with the reply code's.
    if (Number(match[1]) !== codeClass) {
      throw ruleError(rule, `enhanced code "${second}" does not agree with reply code ${code}`);
    }
    enhanced = second;
    rest = rest.slice(second.length).trim();
  }
  return { type: "reply", reply: { code, enhanced, lines: [rest || DEFAULT_FAULT_TEXT] } };
}

/**
 * The rules in force plus a counter per stage. One plan serves the whole
 * server, so `#N` counts occurrences across every connection since start-up.
 */
export class FaultPlan {
  #rules: FaultRule[];
  #counts: Map<FaultStage, number> = new Map();

  /** @param rules In command-line order: the first matching rule wins. */
  constructor(rules: FaultRule[]) {
    this.#rules = [...rules];
  }

  /** True when there is no rule at all (the server can skip calling `match`). */
  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /**
   * Counts one occurrence of `stage` (every call counts, matched or not) and
   * returns the action of the first rule that applies.
   *
   * @param stage The stage reached.
   * @param argument What `~REGEX` is searched in: the address for `mail`/`rcpt`,
   *   the user for `auth`, the HELO name for `helo`. A `~REGEX` rule never
   *   matches a call without one.
   * @returns A fresh action object, or `null` to carry on normally.
   */
  match(stage: FaultStage, argument?: string): FaultAction | null {
    const count = (this.#counts.get(stage) ?? 0) + 1;
    this.#counts.set(stage, count);
    for (const rule of this.#rules) {
      if (rule.stage !== stage) continue;
      if (rule.occurrence !== undefined && rule.occurrence !== count) continue;
      if (rule.pattern !== undefined && (argument === undefined || !rule.pattern.test(argument))) {
        continue;
      }
      return copyAction(rule.action);
    }
    return null;
  }
}

/** Callers may change the reply they get; the rule must stay as parsed. */
function copyAction(action: FaultAction): FaultAction {
  if (action.type !== "reply") return { ...action };
  return { type: "reply", reply: { ...action.reply, lines: [...action.reply.lines] } };
}
