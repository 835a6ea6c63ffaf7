/**
 * What every connection of one server shares: options, logger, spool,
 * fault plan, credentials, and the server's bookkeeping callbacks.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Meta } from "../spool/meta.ts";
import type { SpoolWriter } from "../spool/writer.ts";
import type { Credentials } from "./auth_file.ts";
import type { FaultPlan } from "./faults.ts";
import type { ServeOptions } from "./options.ts";

export interface ServerContext {
  options: ServeOptions;
  logger: Logger;
  spool: SpoolWriter;
  faults: FaultPlan;
  /** `--auth-file` credentials; null means any credentials succeed (or `onAuth` decides). */
  credentials: Credentials | null;
  /** Absolute path of a stored message's `.eml`. */
  emlPath(id: string): string;
  /** Removes a stored message (`.json` first, so readers never see half of it). */
  withdraw(id: string): Promise<void>;
  /**
   * Whether a message committed now reaches `--exit-after`: its session
   * then ends with `421 4.3.2` after the 250, so nothing it pipelined starts
   * another transaction before the drain (which begins once the 250 is out).
   */
  reachesExitAfter(): boolean;
  /** A message was stored and its 250 sent. */
  stored(meta: Meta, emlPath: string): void;
  /** A connection ended. */
  released(): void;
}
