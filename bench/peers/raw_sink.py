"""The raw limit for the 1 GiB case: what `nc -l PORT > FILE` does, no SMTP.

Usage: /usr/bin/python3 raw_sink.py --port PORT --out FILE [--fsync]

Accepts one connection on 127.0.0.1, copies every byte to FILE until the
client shuts down its side, then closes the connection (the client's clock
stops there) and exits. No fsync, like nc; with --fsync, FILE's data and its
directory entry are fsynced before the close: the durable limit, what an
fsync-mode server cannot beat on the same disk. Memory stays at one 1 MiB
buffer.
"""

import argparse
import os
import socket

CHUNK = 1 << 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fsync", action="store_true")
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port))
    # The harness probes readiness with a connection that sends nothing and
    # closes: such an empty connection is not the transfer, wait for the next.
    while True:
        conn, _ = listener.accept()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        total = 0
        with open(args.out, "wb") as out:
            while True:
                n = conn.recv_into(buffer)
                if n == 0:
                    break
                out.write(view[:n])
                total += n
            if args.fsync:
                out.flush()
                os.fsync(out.fileno())
        if args.fsync:
            directory = os.open(os.path.dirname(os.path.abspath(args.out)), os.O_RDONLY)
            os.fsync(directory)
            os.close(directory)
        conn.close()
        if total > 0:
            return


if __name__ == "__main__":
    main()
