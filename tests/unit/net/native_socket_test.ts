/**
 * `NativeSocket` over real loopback connections: reused read buffers must
 * never overwrite bytes the consumer still holds, and closing must deliver
 * every queued byte first.
 */

import assert from "node:assert/strict";
import { NativeSocket } from "../../../lib/net/native_socket.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connected pair: the server side wrapped, the client side raw. */
async function pair(): Promise<{ socket: NativeSocket; client: Deno.TcpConn; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [server, client] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  listener.close();
  const socket = new NativeSocket(server);
  return {
    socket,
    client,
    close() {
      socket.destroy();
      try {
        client.close();
      } catch {
        // Closed by the test.
      }
    },
  };
}

/** Resolves with the next `data` chunk (a view, as emitted). */
function nextChunk(socket: NativeSocket): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const on = (chunk: Uint8Array) => {
      socket.off("data", on);
      resolve(chunk);
    };
    socket.on("data", on);
  });
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const parts: string[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return parts.join("");
    parts.push(decoder.decode(buf.subarray(0, n)));
  }
}

Deno.test("NativeSocket: bytes not yet consumed are never overwritten by the next read", async () => {
  const { socket, client, close } = await pair();
  try {
    const first = nextChunk(socket);
    await client.write(encoder.encode("AAAA"));
    const a = await first;
    const second = nextChunk(socket);
    await client.write(encoder.encode("BBBB"));
    const b = await second;
    assert.equal(decoder.decode(a), "AAAA");
    assert.equal(decoder.decode(b), "BBBB");
    // Both still held: a third read must not land in either buffer.
    const third = nextChunk(socket);
    await client.write(encoder.encode("CCCC"));
    const c = await third;
    assert.equal(decoder.decode(a), "AAAA");
    assert.equal(decoder.decode(b), "BBBB");
    assert.equal(decoder.decode(c), "CCCC");
  } finally {
    close();
  }
});

Deno.test("NativeSocket: after consumed() the read buffer is reused", async () => {
  const { socket, client, close } = await pair();
  try {
    const first = nextChunk(socket);
    await client.write(encoder.encode("one"));
    const a = await first;
    socket.consumed();
    // The read already waiting went into the other buffer; the next one reuses the first.
    const second = nextChunk(socket);
    await client.write(encoder.encode("two"));
    const b = await second;
    socket.consumed();
    const third = nextChunk(socket);
    await client.write(encoder.encode("three"));
    const c = await third;
    assert.notEqual(a.buffer, b.buffer);
    assert.equal(c.buffer, a.buffer);
    assert.equal(decoder.decode(c), "three");
  } finally {
    close();
  }
});

Deno.test("NativeSocket: end() delivers every queued byte, then the peer reads EOF", async () => {
  const { socket, client, close } = await pair();
  try {
    let ended = false;
    socket.write(encoder.encode("250 one\r\n"));
    socket.write(encoder.encode("221 bye\r\n"));
    socket.end(() => (ended = true));
    assert.equal(await readAll(client), "250 one\r\n221 bye\r\n");
    assert.equal(ended, true);
  } finally {
    close();
  }
});

Deno.test("NativeSocket: a peer's EOF is told as end; the consumer answers, ends, and it closes", async () => {
  const { socket, client, close } = await pair();
  try {
    const closed = new Promise<void>((done) => socket.once("close", done));
    let ended = false;
    socket.on("data", () => {
      // A reply written after the data was read, before the consumer learns of the EOF.
      setTimeout(() => socket.write(encoder.encode("221 bye\r\n")), 50);
    });
    socket.on("end", () => {
      ended = true;
      assert.equal(socket.destroyed, false, "half-open: the consumer may still answer");
      setTimeout(() => socket.end(), 100);
    });
    await client.write(encoder.encode("QUIT\r\n"));
    await client.closeWrite();
    assert.equal(await readAll(client), "221 bye\r\n");
    await closed;
    assert.ok(ended);
    assert.equal(socket.destroyed, true);
  } finally {
    close();
  }
});

Deno.test("NativeSocket: the idle timeout fires once the socket is quiet", async () => {
  const { socket, client, close } = await pair();
  try {
    const started = Date.now();
    const fired = new Promise<number>((done) => socket.setTimeout(150, () => done(Date.now())));
    socket.on("data", () => {});
    await new Promise((r) => setTimeout(r, 100));
    await client.write(encoder.encode("NOOP\r\n")); // activity restarts the idle period
    const at = await fired;
    assert.ok(at - started >= 240, `fired after ${at - started} ms`);
  } finally {
    close();
  }
});

Deno.test("NativeSocket: write returns false above the high-water mark and emits drain", async () => {
  const { socket, client, close } = await pair();
  try {
    const big = new Uint8Array(64 * 1024).fill(0x78);
    assert.equal(socket.write(big), false);
    const drained = new Promise<void>((done) => socket.once("drain", done));
    const reading = (async () => {
      const buf = new Uint8Array(65536);
      let got = 0;
      while (got < big.length) got += (await client.read(buf)) ?? big.length;
    })();
    await drained;
    await reading;
    assert.equal(socket.writableLength, 0);
  } finally {
    close();
  }
});

Deno.test("NativeSocket: read buffers grow while reads fill them, and shrink after small reads", async () => {
  const { socket, client, close } = await pair();
  try {
    const sizes: number[] = [];
    let received = 0;
    const total = 1024 * 1024;
    const bulk = new Promise<void>((resolve) => {
      const on = (chunk: Uint8Array) => {
        sizes.push(chunk.buffer.byteLength);
        socket.consumed();
        received += chunk.length;
        if (received === total) {
          socket.off("data", on);
          resolve();
        }
      };
      socket.on("data", on);
    });
    const body = new Uint8Array(total).fill(0x61);
    for (let off = 0; off < total;) off += await client.write(body.subarray(off));
    await bulk;
    assert.equal(sizes[0], 4096, "the first read buffer is small");
    assert.equal(Math.max(...sizes), 256 * 1024, "full reads grow it to 256 KiB");
    // Commands again: sixteen short reads in a row bring the buffers back to 4 KiB.
    let last = 0;
    for (let i = 0; i < 20; i++) {
      const next = nextChunk(socket);
      await client.write(encoder.encode("NOOP\r\n"));
      last = (await next).buffer.byteLength;
      socket.consumed();
    }
    assert.equal(last, 4096);
  } finally {
    close();
  }
});
