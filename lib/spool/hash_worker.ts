/**
 * The worker behind {@linkcode HashWorker}: hashes spool files while the
 * main thread is still writing them. The main thread says how many bytes
 * are written so far; this reads them back from the page cache and feeds
 * sha256, so a large message's hashing runs beside its receiving, on the
 * other core. One job per message; jobs are served in message order.
 *
 * `deno compile` must be given `--include lib/spool/hash_worker.ts` (the
 * Makefile's `INCLUDES`): a worker module is not bundled otherwise.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { sha256 } from "../native_memory.ts";
import type { HashReply, HashRequest } from "./file_hasher.ts";

interface Job {
  file: Deno.FsFile;
  hash: Hash;
  offset: number;
}

const jobs = new Map<number, Job>();
/** One read buffer for every job: jobs run one at a time. */
const BUFFER = new Uint8Array(256 << 10);

/** The worker scope, typed for what is used (the default lib types the window). */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<HashRequest>) => void) | null;
  postMessage(reply: HashReply): void;
};

function readUpTo(job: Job, length: number): void {
  while (job.offset < length) {
    const want = Math.min(BUFFER.length, length - job.offset);
    const n = job.file.readSync(BUFFER.subarray(0, want));
    if (n === null || n === 0) {
      throw new Error(`file ends at ${job.offset} of ${length} bytes`);
    }
    job.hash.update(BUFFER.subarray(0, n));
    job.offset += n;
  }
}

function close(id: number): void {
  const job = jobs.get(id);
  jobs.delete(id);
  try {
    job?.file.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

scope.onmessage = (event) => {
  const request = event.data;
  if (request.op === "drop") return close(request.job);
  try {
    let job = jobs.get(request.job);
    if (request.op === "start") {
      job = {
        file: Deno.openSync(request.path, { read: true }),
        hash: sha256(),
        offset: 0,
      };
      jobs.set(request.job, job);
    }
    // A job that failed earlier already said so; its finish still needs an answer.
    if (job === undefined) throw new Error("the job failed earlier");
    readUpTo(job, request.length);
    if (request.op === "finish") {
      const hex = job.hash.digest("hex");
      close(request.job); // before the reply: Windows cannot rename a file open elsewhere
      scope.postMessage({ job: request.job, hex });
    }
  } catch (e: unknown) {
    close(request.job);
    const error = (e instanceof Error ? e.message : String(e)).split("\n", 1)[0]!;
    scope.postMessage({ job: request.job, error });
  }
};
