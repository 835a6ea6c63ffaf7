import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import {
  Connection,
  type ConnectionHandler,
  EXPIRE_GRACE_MS,
} from "../../../lib/net/connection.ts";
import type { WireSocket } from "../../../lib/net/wire_socket.ts";
import { testConfig } from "../../helpers/feed.ts";

/**
 * A socket whose peer reads nothing: writes stay queued, `end` never
 * completes. Only `destroy` closes it.
 */
class StuckSocket extends EventEmitter implements WireSocket {
  destroyed = false;
  written: string[] = [];
  writableLength = 0;

  /** @param full Whether `write` also says the buffers are full (`drain` never comes). */
  constructor(readonly full = false) {
    super();
  }

  write(bytes: Uint8Array): boolean {
    this.written.push(new TextDecoder().decode(bytes));
    this.writableLength += bytes.length;
    return !this.full;
  }
  end(): this {
    return this; // the queued bytes never leave: no callback
  }
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    queueMicrotask(() => this.emit("close"));
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
}

/** A handler that accepts everything and records why the connection closed. */
function handler(closed: string[]): ConnectionHandler {
  const accept = () => null;
  return {
    helo: accept,
    mail: accept,
    rcpt: accept,
    auth: accept,
    messageStart: accept,
    messageData: () => {},
    chunkEnd: () => null,
    messageEnd: () => ({ reply: { code: 250, enhanced: "2.0.0", lines: ["Ok"] } }),
    messageAbort: () => {},
    secured: () => {},
    tlsFailed: () => {},
    xclient: () => {},
    transcript: () => {},
    replied: () => {},
    closed: (reason) => closed.push(reason),
  };
}

Deno.test("Connection.expire: a last 421 4.3.2, the session ends at once, the socket is destroyed within the grace", async () => {
  const socket = new StuckSocket();
  const closed: string[] = [];
  const connection = new Connection(socket, {
    config: testConfig(),
    handler: handler(closed),
    timeoutMs: 60_000,
  });
  connection.start();
  socket.emit("data", new TextEncoder().encode("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n"));
  await new Promise((r) => setTimeout(r, 10));
  assert.match(socket.written.join(""), /250 2\.1\.0/);
  const started = Date.now();
  const gone = connection.expire();
  assert.match(socket.written.at(-1)!, /^421 4\.3\.2 /);
  assert.deepEqual(
    closed,
    ["shutdown deadline"],
    "a commit finishing later must see the session gone",
  );
  await gone; // never completes its end(): only the grace timer closes it
  assert.ok(socket.destroyed);
  assert.ok(Date.now() - started >= EXPIRE_GRACE_MS - 5);
  await connection.expire(); // a second call is a no-op
  assert.deepEqual(closed, ["shutdown deadline"]);
});

Deno.test("Connection: a 250 that never reached the socket is undone when the connection closes", async () => {
  for (const full of [false, true]) {
    const socket = new StuckSocket(full);
    const outcomes: string[] = [];
    const h: ConnectionHandler = {
      ...handler([]),
      // An async commit: while it runs, earlier replies are flushed and, when
      // the socket is full, the connection waits for a drain that never comes.
      messageEnd: () =>
        Promise.resolve({
          reply: { code: 250, enhanced: "2.0.0", lines: ["Ok: queued as X"] },
          after: () => outcomes.push("after"),
          unsent: () => outcomes.push("unsent"),
        }),
    };
    const connection = new Connection(socket, {
      config: testConfig(),
      handler: h,
      timeoutMs: 60_000,
    });
    connection.start();
    socket.emit(
      "data",
      new TextEncoder().encode(
        "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nhi\r\n.\r\n",
      ),
    );
    await new Promise((r) => setTimeout(r, 20));
    socket.emit("close"); // the client gives up
    assert.deepEqual(outcomes, [full ? "unsent" : "after"], `socket full: ${full}`);
    assert.equal(socket.written.join("").includes("queued as X"), !full);
  }
});

Deno.test("Connection: after a disconnect fault a client that reads nothing is closed within the grace", async () => {
  const socket = new StuckSocket();
  const closed: string[] = [];
  const connection = new Connection(socket, {
    config: testConfig(),
    handler: { ...handler(closed), mail: () => "disconnect" },
    timeoutMs: 60_000,
  });
  connection.start();
  socket.emit("data", new TextEncoder().encode("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n"));
  await new Promise((resolve) => setTimeout(resolve, 2_500)); // CLOSE_GRACE_MS is 2 s
  assert.match(socket.written.join(""), /^250/m, "the EHLO reply owed before the fault");
  assert.ok(socket.destroyed, "still open: nothing else would ever close it");
  assert.deepEqual(closed, ["disconnect fault"]);
});
