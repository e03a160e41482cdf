"""Helpers for the aiohttp tests: real servers on 127.0.0.1 ephemeral ports, bounded in time."""
import asyncio
import contextlib
from typing import AsyncIterator, Dict, List

from aiohttp import web
from aiohttp.test_utils import TestServer

from aws_like_sdk.ext.aiohttp.middleware import middleware
from tests.support.udp_sink import assemble


@contextlib.asynccontextmanager
async def serve(app: web.Application, **runner_kwargs) -> AsyncIterator[TestServer]:
    """Run ``app`` on 127.0.0.1 with an ephemeral port until the block ends."""
    server = TestServer(app, host='127.0.0.1', port=0, **runner_kwargs)
    await asyncio.wait_for(server.start_server(), 10)
    try:
        yield server
    finally:
        await asyncio.wait_for(server.close(), 10)


def traced_app(routes, *outer_middlewares, **app_kwargs) -> web.Application:
    """An application with the X-Ray middleware (after any ``outer_middlewares``) and ``routes``."""
    app = web.Application(middlewares=[*outer_middlewares, middleware], **app_kwargs)
    app.add_routes(routes)
    return app


async def quiet(udp_sink, seconds: float = 0.2) -> List[Dict]:
    """Let in-flight datagrams arrive, then return every document received so far."""
    await asyncio.sleep(seconds)
    return udp_sink.documents()


async def wait_segments(udp_sink, count: int, timeout: float = 5.0) -> List[Dict]:
    """Wait (without blocking the loop the servers run on) for ``count`` whole segments, streamed pieces
    reattached, and return every segment received, oldest first."""
    for _ in range(int(timeout / 0.01)):
        trees = assemble(udp_sink.documents())
        if len(trees) >= count:
            break
        await asyncio.sleep(0.01)
    return sorted(assemble(udp_sink.documents()).values(), key=lambda doc: doc['start_time'])
