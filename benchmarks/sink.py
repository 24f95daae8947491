"""A minimal ingest sink for benchmarks: asyncio HTTP/1.1 with keep-alive on
127.0.0.1, answers 202 and counts events without parsing them. Run as its own process, so the
benchmark's client and the sink do not share a GIL.

    python benchmarks/sink.py PORT

``GET /count`` answers ``{"events": n, "requests": n}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

events = 0
requests = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global events, requests
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if method == "POST" and path == "/v1/ingest":
                # Counted, not parsed: the sink must not be what is measured.
                # The SDK gives every event one "event_id" key, and a quote
                # inside a string value is escaped, so this count is exact.
                n = body.count(b'"event_id":')
                events += n
                requests += 1
                out = json.dumps({"accepted": n, "batch_id": str(requests), "queued_at": 0}).encode()
                status = b"202 Accepted"
            else:
                out = json.dumps({"events": events, "requests": requests}).encode()
                status = b"200 OK"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(out)).encode()
                + b"\r\n\r\n"
                + out
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
