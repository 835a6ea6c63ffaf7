/**
 * Start-up recovery (SPEC §3): what a crash or a second signal left behind
 * is cleared, and nothing else is touched.
 *
 * @module
 */

import { isMessageId } from "./id.ts";
import { joinPath } from "./fsync.ts";

/** Name of the work-in-progress directory inside the spool. */
export const TMP_DIR = ".tmp";
/** Lock file inside `.tmp/`: every running server holds it shared (see `SpoolWriter.open`). */
export const LOCK_FILE = ".lock";

/** What {@linkcode recoverSpool} removed, for the start-up log line. */
export interface RecoveryReport {
  /** Entries removed from `.tmp/` (messages in flight when the last run ended). */
  tmpRemoved: number;
  /**
   * `<id>.eml` files without their `<id>.json` (never acknowledged with a
   * 250) and `<id>.json` files without their `<id>.eml` (see
   * {@linkcode recoverSpool}).
   */
  orphansRemoved: number;
  /** Recovery did not run: another live server uses this spool (its work is in flight). */
  skipped: boolean;
}

/**
 * Clears `dir/.tmp/` and removes every `<id>.eml` that has no `<id>.json`
 * and every `<id>.json` that has no `<id>.eml`. The `.json` is renamed into
 * place only after the `.eml`, so a lone `.eml` belongs to a message that
 * never got its 250 reply and the client still holds it. A lone `.json` is
 * what an `.eml` deleted by hand leaves, or a crash on a file system that
 * neither journals nor syncs a new file's directory entry with its data
 * (ext2): there a small `.eml`'s entry is made durable only by the directory
 * fsync after the `.json`'s rename (`Sink.commit`), and a `.json` means a
 * complete message (SPEC §3). Only names whose stem is a message ID count;
 * every other file is left alone. A missing directory counts as empty.
 *
 * Run it only when no other server uses the spool (the caller holds the
 * exclusive lock), or it would delete that server's messages in flight.
 *
 * @param dir The spool directory.
 * @returns How many entries were removed.
 */
export async function recoverSpool(dir: string): Promise<RecoveryReport> {
  const report: RecoveryReport = { tmpRemoved: 0, orphansRemoved: 0, skipped: false };
  const tmp = joinPath(dir, TMP_DIR);
  for (const entry of await readDirOrEmpty(tmp)) {
    if (entry.name === LOCK_FILE) continue;
    if (await removeIfPresent(joinPath(tmp, entry.name), entry.isDirectory)) {
      report.tmpRemoved++;
    }
  }

  /** Files by extension; `named` also has what is not a file, which is never removed. */
  const files = { ".eml": new Set<string>(), ".json": new Set<string>() };
  const named = { ".eml": new Set<string>(), ".json": new Set<string>() };
  for (const entry of await readDirOrEmpty(dir)) {
    const dot = entry.name.lastIndexOf(".");
    const stem = entry.name.slice(0, dot);
    const ext = entry.name.slice(dot);
    if (dot === -1 || (ext !== ".eml" && ext !== ".json") || !isMessageId(stem)) continue;
    named[ext].add(stem);
    if (entry.isFile) files[ext].add(stem);
  }
  for (const [ext, other] of [[".eml", ".json"], [".json", ".eml"]] as const) {
    for (const id of files[ext]) {
      if (named[other].has(id)) continue;
      if (await removeIfPresent(joinPath(dir, id + ext), false)) report.orphansRemoved++;
    }
  }
  return report;
}

async function readDirOrEmpty(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) entries.push(entry);
  } catch (e: unknown) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return entries;
}

async function removeIfPresent(path: string, recursive: boolean): Promise<boolean> {
  try {
    await Deno.remove(path, { recursive });
    return true;
  } catch (e: unknown) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
