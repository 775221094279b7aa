"""A WebSocket echo application and client for the proxy tests (Python `websockets`).

    python3 ws_app.py serve
        Listens on 127.0.0.1 (a free port), prints `listening on 127.0.0.1:PORT`, and for
        each upgrade prints `upgraded xfcc=<X-Forwarded-Client-Cert of the upgrade request>`;
        it sends that line to the client first, then echoes every message back.

    python3 ws_app.py connect URL CA CERT KEY MESSAGE
        Connects over TLS with a client certificate, prints the server's first message and
        the echo of MESSAGE; a refused upgrade prints `refused: HTTP <status>` (exit 3).
"""

import asyncio
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import InvalidStatus


async def echo(ws):
    xfcc = ws.request.headers.get("x-forwarded-client-cert", "none")
    line = f"upgraded xfcc={xfcc}"
    print(line, flush=True)
    await ws.send(line)
    async for message in ws:
        await ws.send(message)


async def run_server():
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


async def run_client(url, ca, cert, key, message):
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    try:
        async with connect(url, ssl=context, open_timeout=20) as ws:
            print(await asyncio.wait_for(ws.recv(), 20), flush=True)
            await ws.send(message)
            print("echo: " + await asyncio.wait_for(ws.recv(), 20), flush=True)
    except InvalidStatus as refused:
        print(f"refused: HTTP {refused.response.status_code}", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(run_server())
    else:
        asyncio.run(run_client(*sys.argv[2:7]))
