#!/usr/bin/env python3
"""A TCP proxy that delays every byte by half a round trip each way (no bandwidth cap, no loss):
enough to show what a read that waits one round trip per block costs. For the benches only.

  latency_proxy.py RTT_MS LISTEN_PORT:TARGET_PORT ...   (all on 127.0.0.1; runs until killed)
"""
import asyncio
import sys
import time

ONE_WAY = float(sys.argv[1]) / 2000.0


async def pipe(reader, writer):
    queue = asyncio.Queue()

    async def take():
        try:
            while True:
                data = await reader.read(1 << 20)
                await queue.put((time.monotonic() + ONE_WAY, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((time.monotonic(), b""))

    async def give():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    await asyncio.gather(take(), give())


async def main():
    servers = []
    for pair in sys.argv[2:]:
        listen, target = (int(p) for p in pair.split(":"))

        async def accept(reader, writer, target=target):
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        servers.append(await asyncio.start_server(accept, "127.0.0.1", listen))
    print("latency proxy ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
