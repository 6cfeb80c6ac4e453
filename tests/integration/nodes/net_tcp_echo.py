"""A TCP echo node for the mediator tests: echoes every byte back and appends
what it received to a log file (so a test can see one-way traffic arrive).

Usage: net_tcp_echo.py PORT LOGFILE
"""

import asyncio
import sys


async def main(port: int, path: str) -> None:
    out = open(path, "ab", buffering=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                out.write(data)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
