/**
 * The hashing side of {@linkcode HashWorker}, for any thread: the hash
 * worker runs it, and so does each serving thread for the other's large
 * messages (lib/server/threads.ts), which spares a third isolate's memory.
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

/** One read buffer for every job of the thread: jobs run one at a time. */
const BUFFER = new Uint8Array(256 << 10);

/** Where requests come from: a worker's scope, or a MessagePort. */
export interface HashEndpoint {
  onmessage: ((event: MessageEvent<HashRequest>) => void) | null;
  postMessage(reply: HashReply): void;
}

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

/**
 * Answers {@linkcode HashRequest}s arriving at `scope`: reads each file back
 * from the page cache as far as the requester says it is written, and feeds
 * sha256, so a large message's hashing runs beside its receiving, on another
 * core. One job per message; jobs are served in message order.
 *
 * @param scope The endpoint; its `onmessage` is taken over.
 */
export function serveHashRequests(scope: HashEndpoint): void {
  const jobs = new Map<number, Job>();
  const close = (id: number) => closeJob(jobs, id);
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
}

function closeJob(jobs: Map<number, Job>, id: number): void {
  const job = jobs.get(id);
  jobs.delete(id);
  try {
    job?.file.close();
  } catch {
    // Already closed: nothing left to release.
  }
}
