/**
 * The helper thread (threads.ts): serves the primary's ports until told to
 * close, then reports how many messages it stored.
 *
 * `deno compile` must be given `--include lib/server/helper_worker.ts`; a
 * binary without it serves on one thread and says so in a warning.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { serveHashRequests } from "../spool/hash_service.ts";
import { serveHelper, type Server } from "./server.ts";
import { type FromHelper, reasonOf, type ToHelper } from "./threads.ts";

let server: Server | null = null;

function post(message: FromHelper): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToHelper>) => {
  const message = event.data;
  if (message.type === "start") {
    try {
      serveHashRequests(message.hashForPrimary);
      server = await serveHelper(message.options, message.shared, message.hashForHelper);
      void server.finished.then(() => post({ type: "stopped", stored: server!.stored }));
      post({ type: "ready" });
    } catch (e: unknown) {
      post({ type: "failed", reason: reasonOf(e) });
    }
  } else if (message.type === "close") {
    if (server) void server.close();
    else post({ type: "stopped", stored: 0 });
  } else {
    server?.abort();
  }
};
