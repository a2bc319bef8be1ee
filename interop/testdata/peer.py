"""Interop peer for wsforge's tests, on Python's websockets library.

    peer.py server CONFIG       listen on 127.0.0.1, an ephemeral port
    peer.py client CONFIG URL   connect to URL

CONFIG is JSON: {"deflate": null | "default" | {RFC 7692 parameter: value}}.
null disables permessage-deflate, "default" is the library's own default,
and an object configures it with the parameters named as in RFC 7692
(client_max_window_bits may be true, for an offer without a value).

Both modes echo every data message with its type. A text message starting
with "!" is a command instead (test data never starts with "!"):

    !frag N           echo the next data message in N fragments
    !ping PAYLOAD     ping with PAYLOAD; once the pong arrives send "!pong PAYLOAD"
    !close CODE TEXT  start the closing handshake

Events go to stdout as JSON lines, flushed at once so that the test can
wait on them: listening (server), open, closed, error. The process exits
when stdin closes, so that a test process killed outright leaves no peer
behind.
"""

import asyncio
import json
import os
import sys
import threading

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def connection_kwargs(config, server):
    deflate = config.get("deflate")
    if deflate is None:
        return {"compression": None}
    if deflate == "default":
        return {}
    factory = ServerPerMessageDeflateFactory if server else ClientPerMessageDeflateFactory
    return {"extensions": [factory(**deflate)]}


def headers_of(ws):
    # websockets 10 to 13 expose the handshake headers on the connection;
    # the asyncio implementation of 14 and later on request and response.
    req = getattr(ws, "request_headers", None)
    resp = getattr(ws, "response_headers", None)
    if req is None and getattr(ws, "request", None) is not None:
        req = ws.request.headers
    if resp is None and getattr(ws, "response", None) is not None:
        resp = ws.response.headers
    return req, resp


def extensions_of(ws):
    exts = getattr(ws, "extensions", None)
    if exts is None:
        exts = ws.protocol.extensions
    return [
        {
            "name": e.name,
            "local_no_context_takeover": e.local_no_context_takeover,
            "remote_no_context_takeover": e.remote_no_context_takeover,
            "local_max_window_bits": e.local_max_window_bits,
            "remote_max_window_bits": e.remote_max_window_bits,
        }
        for e in exts
    ]


def report_open(ws):
    req, resp = headers_of(ws)
    emit(
        "open",
        offer=req.get("Sec-WebSocket-Extensions", "") if req else "",
        response=resp.get("Sec-WebSocket-Extensions", "") if resp else "",
        params=extensions_of(ws),
    )


def chain(exc):
    causes = []
    while exc is not None:
        causes.append(repr(exc))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(causes)


def split(msg, n):
    size = len(msg)
    return [msg[i * size // n : (i + 1) * size // n] for i in range(n)]


async def command(ws, msg):
    name, _, arg = msg[1:].partition(" ")
    if name == "ping":
        pong = await ws.ping(arg.encode())
        await pong
        await ws.send("!pong " + arg)
    elif name == "close":
        code, _, reason = arg.partition(" ")
        await ws.close(int(code), reason)
    else:
        raise ValueError("unknown command " + repr(msg))


async def session(ws):
    report_open(ws)
    frag = 0
    try:
        while True:
            msg = await ws.recv()
            if isinstance(msg, str) and msg.startswith("!frag "):
                frag = int(msg[6:])
            elif isinstance(msg, str) and msg.startswith("!"):
                await command(ws, msg)
            elif frag > 1 and len(msg) >= frag:
                await ws.send(split(msg, frag))
                frag = 0
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed as exc:
        if exc.sent is not None and exc.sent.code not in (1000, 1001) and exc.sent.code < 3000:
            # The peer failed the connection: say why, since the close
            # frame it sent carries no more than the code.
            emit("error", error="sent close %d: %s" % (exc.sent.code, chain(exc)))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        emit("error", error=chain(exc))
        raise
    await ws.wait_closed()
    emit("closed", code=ws.close_code, reason=ws.close_reason)


async def handler(ws, path=None):
    await session(ws)


def exit_on_stdin_eof():
    sys.stdin.read()
    os._exit(0)


async def main():
    mode, config = sys.argv[1], json.loads(sys.argv[2])
    common = {"max_size": None, "ping_interval": None, "close_timeout": 5}
    if mode == "server":
        kwargs = connection_kwargs(config, True)
        async with websockets.serve(handler, "127.0.0.1", 0, **common, **kwargs) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            emit("listening", port=port, version=websockets.__version__)
            await asyncio.Future()
    else:
        kwargs = connection_kwargs(config, False)
        try:
            ws = await websockets.connect(sys.argv[3], **common, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            emit("error", error="connect: %r" % exc)
            sys.exit(1)
        await session(ws)


if __name__ == "__main__":
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    asyncio.run(main())
