"""Debian's aiosmtpd with a small durable two-file writer: the peer for smtpd.

Usage: /usr/bin/python3 aiosmtpd_writer.py --port PORT --spool DIR [--no-fsync]

Each message becomes <id>.eml and <id>.json, committed the way smtpd commits
(SPEC section 3): write a temporary file, fsync it, rename it to .eml, write
the .json the same way, fsync the directory, and only then answer 250. With
--no-fsync every fsync is skipped, as with smtpd --no-fsync.

The file work runs in the default thread pool so that concurrent sessions
overlap their fsyncs instead of stalling the event loop; that is what a
careful aiosmtpd user would write. aiosmtpd itself keeps the whole message in
memory (smtp_DATA joins the lines), which the 1 GiB case shows.
"""

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import signal
import time
from datetime import datetime, timezone

from aiosmtpd.smtp import SMTP


class DurableWriter:
    """aiosmtpd handler: stores each message as <id>.eml + <id>.json."""

    def __init__(self, spool, fsync):
        self.spool = spool
        self.tmp = os.path.join(spool, ".tmp")
        self.fsync = fsync
        self.counter = itertools.count()
        os.makedirs(self.tmp, exist_ok=True)

    def next_id(self):
        # Sortable by time of receipt; the counter keeps ids unique within a ms.
        return "%017d-%d-%08d" % (time.time_ns() // 1000, os.getpid(), next(self.counter))

    def write_file(self, final, data):
        temporary = os.path.join(self.tmp, os.path.basename(final))
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, final)

    def commit(self, message_id, content, meta):
        self.write_file(os.path.join(self.spool, message_id + ".eml"), content)
        meta["size"] = len(content)
        meta["sha256"] = hashlib.sha256(content).hexdigest()
        encoded = json.dumps(meta).encode()
        self.write_file(os.path.join(self.spool, message_id + ".json"), encoded)
        if self.fsync:
            # The renames are durable only once the directory entry is.
            dir_fd = os.open(self.spool, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    async def handle_DATA(self, server, session, envelope):
        message_id = self.next_id()
        meta = {
            "id": message_id,
            "receivedAt": datetime.now(timezone.utc).isoformat(),
            "mailFrom": envelope.mail_from or "",
            "rcptTo": list(envelope.rcpt_tos),
            "helo": session.host_name,
            "client": {"address": session.peer[0], "port": session.peer[1]},
        }
        content = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.commit, message_id, content, meta)
        except OSError as error:
            return "451 4.3.0 Cannot store message: %s" % error.strerror
        return "250 2.0.0 Ok: queued as " + message_id


async def serve(args):
    handler = DurableWriter(args.spool, not args.no_fsync)
    loop = asyncio.get_running_loop()
    # data_size_limit=None: the 1 GiB case must be accepted, as by the others.
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=None, enable_SMTPUTF8=True, decode_data=False),
        host="127.0.0.1",
        port=args.port,
        backlog=1024,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--no-fsync", action="store_true")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
