/**
 * The last line of defence of a thread that serves: an error that escaped
 * every handler is logged and the thread goes on. One session's bug must not
 * end the others, nor lose the messages they are receiving; that session
 * still ends at its idle timeout at the latest.
 *
 * @module
 */

import type { Logger } from "../log.ts";

/**
 * Logs uncaught errors and unhandled rejections of this thread instead of
 * letting them end it.
 *
 * @param logger Where the one `internal error` line goes.
 * @returns Removes the handlers again.
 */
export function guardUncaught(logger: Logger): () => void {
  const report = (event: Event, reason: unknown) => {
    event.preventDefault();
    logger.error("internal error: serving goes on", {
      error: reason instanceof Error ? reason.message : String(reason),
      // The frame that threw: enough to find the bug, still one line.
      at: reason instanceof Error ? firstFrame(reason) : undefined,
    });
  };
  const onError = (e: ErrorEvent) => report(e, e.error ?? e.message);
  const onRejection = (e: PromiseRejectionEvent) => report(e, e.reason);
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onRejection);
  return () => {
    globalThis.removeEventListener("error", onError);
    globalThis.removeEventListener("unhandledrejection", onRejection);
  };
}

function firstFrame(e: Error): string | undefined {
  return e.stack?.split("\n").find((line) => line.trimStart().startsWith("at "))?.trim();
}
