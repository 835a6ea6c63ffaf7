/**
 * Server side of a TLS handshake on an accepted `node:net` socket: STARTTLS
 * (RFC 3207) and implicit TLS both go through here, because `Deno.startTls`
 * only speaks the client side.
 *
 * Bytes and the upgrade (measured on Deno 2.9.6):
 * - Bytes the plain socket has already emitted as `data` are the driver's;
 *   it must discard everything after the STARTTLS line (RFC 3207 §4.2,
 *   CVE-2011-0411), never execute it.
 * - Bytes that arrive later but sit unread in a paused socket's buffer are
 *   fed to TLS as handshake bytes, exactly as Node does: plaintext there makes
 *   the handshake fail, it is never delivered as data on the TLS socket.
 * - A listener on the plain socket's `data` after the upgrade would steal and
 *   misread bytes meant for TLS: the driver removes its listeners first.
 *
 * @module
 */

import type net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";

/** Protocol and cipher of a TLS session, as recorded in the spool metadata (`tls`). */
/** A TLS client must finish its handshake within this: a stalled one holds a connection slot. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

export interface TlsInfo {
  /** `TLSv1.3`, `TLSv1.2`. */
  protocol: string;
  /** IANA name, e.g. `TLS_AES_256_GCM_SHA384`. */
  cipher: string;
}

/** Why a handshake did not complete; the message is one line. */
export class TlsHandshakeError extends Error {
  /** @param message One line, e.g. `TLS handshake timed out after 30000 ms`. */
  constructor(message: string) {
    super(message);
    this.name = "TlsHandshakeError";
  }
}

/**
 * Runs the server side of a TLS handshake on `socket`. Call it after the
 * STARTTLS `220` is written (wait for the write callback) and after removing
 * the driver's listeners from `socket`; use only the returned socket afterwards.
 *
 * @param socket The accepted plain socket; it belongs to TLS from now on.
 * @param secureContext From `loadTlsContext`.
 * @param timeoutMs Limit for the whole handshake (a client that never starts one).
 * @returns The TLS socket once the handshake is complete; attach an `error` listener at once.
 * @throws {TlsHandshakeError} On a failed, closed or stalled handshake; both sockets are then destroyed.
 *
 * @example Usage
 * ```ts ignore
 * const secure = await upgradeServerSocket(socket, material.secureContext, 30_000);
 * ```
 */
export function upgradeServerSocket(
  socket: net.Socket,
  secureContext: tls.SecureContext,
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    // Stop a flowing socket so that nothing more is emitted as plain `data`;
    // what it still buffers becomes handshake input (see the module notes).
    socket.pause();
    const cipher = new CipherStream(socket);
    const secure = new tls.TLSSocket(cipher as unknown as net.Socket, {
      isServer: true,
      secureContext,
    });
    cipher.attach(secure);
    let settled = false;
    const timer = setTimeout(
      () => fail(`TLS handshake timed out after ${timeoutMs} ms`),
      timeoutMs,
    );

    function cleanUp(): void {
      settled = true;
      clearTimeout(timer);
      secure.off("secure", onSecure);
      secure.off("error", onError);
      secure.off("close", onClose);
      secure.off("end", onClose);
      socket.off("error", onError);
    }
    function fail(reason: string): void {
      if (settled) return;
      cleanUp();
      // Errors from the teardown itself have nobody left to tell.
      secure.on("error", ignore);
      socket.on("error", ignore);
      secure.destroy();
      socket.destroy();
      reject(new TlsHandshakeError(reason));
    }
    function onSecure(): void {
      if (settled) return;
      cleanUp();
      // The TLS socket owns the connection now and reports its errors; one
      // the plain socket still emits must not become an uncaught exception.
      socket.on("error", ignore);
      resolve(secure);
    }
    function onError(error: Error): void {
      fail(`TLS handshake failed: ${firstLine(error.message)}`);
    }
    function onClose(): void {
      fail("Connection closed during the TLS handshake");
    }

    secure.once("secure", onSecure);
    secure.on("error", onError);
    // A peer that hangs up mid-handshake gets `end`/`close`, not `error`.
    secure.on("close", onClose);
    // allowHalfOpen (inherited from the listener): a FIN ends, it does not close.
    secure.on("end", onClose);
    socket.on("error", onError);
  });
}

/** Plaintext queued for a client past this stops reading its ciphertext. */
const WRITE_HIGH_WATER = 256 * 1024;

/**
 * The TCP socket as the stream TLS reads ciphertext from and writes it to.
 * On a TCP socket given directly, Deno 2.9.6's node:tls neither honours
 * `pause()` nor reports a client that stops reading: it completes every
 * write at once and keeps reading ciphertext it no longer decrypts, without
 * bound (a client pipelining commands and never reading its replies took the
 * server past 1 GB in seconds). Through a stream, TLS writes complete only
 * when the TCP socket took the bytes, so `write()` returns false and `drain`
 * comes as on plain TCP; and reading the TCP socket stops while the TLS
 * socket is paused or its unsent plaintext passes `WRITE_HIGH_WATER`.
 */
class CipherStream extends Duplex {
  #socket: net.Socket;
  #secure: tls.TLSSocket | null = null;
  #wanted = true;
  #paused = false;
  #tlsHandle: { drainEncOut?(): ArrayBuffer | null | undefined } | null = null;

  constructor(socket: net.Socket) {
    super({ allowHalfOpen: true });
    this.#socket = socket;
    // `setNoDelay` on the TLS socket no longer reaches TCP: without it the
    // greeting after an implicit-TLS handshake waited ~40 ms for a delayed ACK.
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => {
      if (!this.push(chunk)) this.#wanted = false;
      this.#gate();
    });
    socket.on("end", () => this.push(null));
    socket.on("close", () => this.destroy());
    if (socket.readableEnded) this.push(null);
  }

  /** Ties reading to `secure`'s `pause()`/`resume()` and to its unsent plaintext. */
  attach(secure: tls.TLSSocket): void {
    this.#secure = secure;
    // deno-lint-ignore no-explicit-any
    this.#tlsHandle = (secure as any)._handle;
    secure.on("drain", () => this.#gate());
    const pause = secure.pause.bind(secure);
    const resume = secure.resume.bind(secure);
    secure.pause = () => {
      this.#paused = true;
      this.#gate();
      return pause();
    };
    secure.resume = () => {
      this.#paused = false;
      this.#gate();
      return resume();
    };
    this.#gate();
  }

  #gate(): void {
    const backlog = this.#secure?.writableLength ?? 0;
    if (this.#wanted && !this.#paused && backlog <= WRITE_HIGH_WATER) this.#socket.resume();
    else this.#socket.pause();
  }

  override _read(): void {
    this.#wanted = true;
    this.#gate();
  }

  override _write(chunk: Uint8Array, _encoding: string, done: (error?: Error | null) => void) {
    this.#socket.write(chunk, done);
  }

  override _final(done: () => void): void {
    this.#socket.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // TLS tears the stream down in the same call that fails the handshake,
    // before its fatal alert (RFC 8446 §6.2) is written: send it first.
    const alert = this.#tlsHandle?.drainEncOut?.();
    if (alert && alert.byteLength > 0 && !this.#socket.destroyed) {
      this.#socket.write(new Uint8Array(alert));
    }
    this.#socket.destroy();
    done(error);
  }
}

/**
 * Protocol and cipher of an established TLS socket.
 *
 * @param socket A socket whose handshake is complete.
 * @returns `{ protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" }`; `"unknown"` where Deno cannot tell.
 */
export function tlsInfo(socket: tls.TLSSocket): TlsInfo {
  const cipher = socket.getCipher() as Partial<tls.CipherNameAndProtocol> | undefined;
  return {
    protocol: socket.getProtocol() ?? cipher?.version ?? "unknown",
    // `standardName` is the IANA name; in Deno `name` is the same, in Node the
    // OpenSSL one (`TLS_AES_256_GCM_SHA384` vs `ECDHE-RSA-AES128-GCM-SHA256`).
    cipher: cipher?.standardName ?? cipher?.name ?? "unknown",
  };
}

function firstLine(text: string): string {
  return text.split("\n")[0] ?? text;
}

function ignore(): void {}
