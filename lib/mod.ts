/**
 * smtpd as a library: the same SMTP sink as the `smtpd` command, with your
 * own callbacks, plus the spool reader behind `list`/`show`/`wait`/`purge`
 * and the client behind `send`.
 *
 * @example Accept mail only for known recipients, check AUTH against a map
 * ```ts ignore
 * import { serve } from "./mod.ts";
 *
 * const users = new Map([["app", "s3cret"]]);
 * const server = await serve({
 *   listen: ["127.0.0.1:0"],
 *   spool: "./mail",
 *   onAuth: (user, pass) => users.get(user) === pass,
 *   onRcptTo: (address) =>
 *     address.endsWith("@example.com") ? undefined : { code: 550, enhanced: "5.1.1", text: "No such user" },
 *   onMessage: (meta, emlPath) => console.log(meta.id, meta.headers.subject, emlPath),
 * });
 * console.log("listening on port", server.addresses[0]!.port);
 * await server.finished;
 * ```
 *
 * @module
 */

export { serve } from "./server/server.ts";
export type { ServerHandle } from "./server/server.ts";
export { OptionError, StartupError } from "./server/setup.ts";
export { DEFAULTS } from "./server/options.ts";
export type {
  CallbackResult,
  ConnectionInfo,
  RejectReply,
  ServeOptions,
} from "./server/options.ts";
export { SpoolReader } from "./spool/reader.ts";
export type { ListOptions, MessageFilter, MetaRead } from "./spool/reader.ts";
export type { Meta } from "./spool/meta.ts";
export {
  DotStuffer,
  isSendableAddress,
  isSendableHelo,
  SendError,
  sendMail,
} from "./net/client.ts";
export type { SendOptions } from "./net/client.ts";
export { parseDuration, parseHostPort, parseSize } from "./units.ts";
export type { HostPort } from "./units.ts";
export { LOG_FORMATS, LOG_LEVELS } from "./log.ts";
export type { LogFormat, LogLevel } from "./log.ts";
