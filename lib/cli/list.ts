/**
 * `smtpd list [--json]`: one line per stored message, streamed in receipt order.
 *
 * @module
 */

import { type Meta, SpoolReader } from "../mod.ts";
import { EXIT_OK } from "./errors.ts";
import type { Io } from "./main.ts";

/**
 * Column widths. IDs are ULIDs (26 characters) and are never cut, since
 * `show` needs them whole; RECEIVED is `2026-11-23T06:53:00Z`. Widths are
 * fixed because the list streams: no row is known before it is printed.
 */
const WIDTH = { id: 26, received: 20, from: 24, to: 28, subject: 36, size: 9 } as const;
const GAP = "  ";

/** C0, DEL and C1 controls: a header must not move the cursor or start an escape sequence. */
const CONTROL_REGEXP = /[\p{Cc}]/gu;

const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });
/**
 * Two terminal columns: East Asian Wide and Fullwidth characters (Hangul,
 * CJK, kana, fullwidth forms) and emoji shown as emoji by default or with
 * VS16; the usual `wcwidth` ranges, not the whole Unicode table.
 */
const WIDE_REGEXP =
  /[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6\uFE0F\u{20000}-\u{3FFFD}]|\p{Emoji_Presentation}/u;
/** No column: combining marks and zero-width characters alone. */
const ZERO_WIDTH_REGEXP = /^[\p{M}\u200B-\u200F\u2060\uFEFF]+$/u;

const PRINTABLE_ASCII_REGEXP = /^[\x20-\x7e]*$/;

/** Terminal columns of one grapheme cluster. */
function columns(grapheme: string): number {
  if (ZERO_WIDTH_REGEXP.test(grapheme)) return 0;
  return WIDE_REGEXP.test(grapheme) ? 2 : 1;
}

/**
 * Fits `text` into `width` terminal columns (a CJK character or an emoji
 * takes two), padding with spaces; a longer text is cut with `…` when
 * `cut`, else kept whole.
 */
export function fit(text: string, width: number, cut = true): string {
  const clean = text.replace(CONTROL_REGEXP, " ");
  if (PRINTABLE_ASCII_REGEXP.test(clean)) { // the usual row: one column per character
    if (clean.length <= width) return clean + " ".repeat(width - clean.length);
    return cut ? clean.slice(0, width - 1) + "…" : clean;
  }
  let used = 0;
  /** Where the text is cut, and the columns before: what fits beside an `…`. */
  let cutAt = -1;
  let cutWidth = 0;
  for (const { segment, index } of GRAPHEMES.segment(clean)) {
    const w = columns(segment);
    if (cutAt < 0 && used + w > width - 1) {
      cutAt = index;
      cutWidth = used;
    }
    used += w;
  }
  if (used <= width) return clean + " ".repeat(width - used);
  if (!cut) return clean;
  return clean.slice(0, cutAt) + "…" + " ".repeat(width - 1 - cutWidth);
}

/** The header line of the table (no newline). */
export function formatListHeader(): string {
  return [
    fit("ID", WIDTH.id),
    fit("RECEIVED", WIDTH.received),
    fit("FROM", WIDTH.from),
    fit("TO", WIDTH.to),
    fit("SUBJECT", WIDTH.subject),
    "SIZE".padStart(WIDTH.size),
  ].join(GAP);
}

/**
 * One message as a table row (no newline): `<>` for the null sender,
 * recipients comma-joined, received time in UTC to the second.
 *
 * @param meta The message metadata.
 * @param cut Cut long values to their column (a terminal); a pipe gets them
 *   whole, so `smtpd list | grep` finds every recipient and the whole subject.
 * @returns The row.
 */
export function formatListRow(
  meta: Pick<Meta, "id" | "receivedAt" | "mailFrom" | "rcptTo" | "size" | "headers">,
  cut = true,
): string {
  const received = meta.receivedAt.replace(/\.\d+Z$/, "Z");
  const id = meta.id.length >= WIDTH.id ? meta.id : meta.id.padEnd(WIDTH.id);
  return [
    id,
    fit(received, WIDTH.received),
    fit(meta.mailFrom === "" ? "<>" : meta.mailFrom, WIDTH.from, cut),
    fit(meta.rcptTo.join(","), WIDTH.to, cut),
    fit(meta.headers.subject ?? "", WIDTH.subject, cut),
    String(meta.size).padStart(WIDTH.size),
  ].join(GAP);
}

/**
 * Lists the spool: one line per message (SPEC §2), so `smtpd list | wc -l`
 * counts them. Only on a terminal are values cut to their column and a header
 * printed before the first row (an empty or missing spool prints nothing
 * either way). A `.json` that holds no valid
 * metadata is skipped with one warning line on stderr.
 *
 * @param spool The spool directory.
 * @param json One meta JSON object per line instead of the table.
 * @param io Output.
 * @returns 0, also when some files were skipped.
 */
export async function runList(spool: string, json: boolean, io: Io): Promise<number> {
  let first = true;
  const terminal = io.stdoutIsTerminal === true;
  const onUnreadable = (id: string, reason: string) =>
    io.stderr(`smtpd: list: skipped ${id}: unreadable metadata (${reason})\n`);
  for await (const meta of new SpoolReader(spool).list(undefined, { onUnreadable })) {
    if (json) {
      io.stdout(JSON.stringify(meta) + "\n");
      continue;
    }
    if (first && terminal) io.stdout(formatListHeader() + "\n");
    first = false;
    io.stdout(formatListRow(meta, terminal) + "\n");
  }
  return EXIT_OK;
}
