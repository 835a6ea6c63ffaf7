/**
 * The worker behind {@linkcode HashWorker} (the requests are served by
 * `hash_service.ts`, which a second serving thread runs as well).
 *
 * `deno compile` must be given `--include lib/spool/hash_worker.ts` (the
 * Makefile's `INCLUDES`): a worker module is not bundled otherwise.
 *
 * @module
 */

import { serveHashRequests } from "./hash_service.ts";

serveHashRequests(globalThis as unknown as Parameters<typeof serveHashRequests>[0]);
