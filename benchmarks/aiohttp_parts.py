"""Where aws_like_sdk's aiohttp middleware spends its time inside a request: one part at a time.

Tight-loop timings understate a request's tracing cost about threefold (code and data are cold after
the framework's own work), and two processes of the same code differ by up to 2 µs on a shared
machine. So this script measures in one process and one event loop: a single app whose middleware
runs a different variant in each round, rounds interleaved, best round per variant. The figure printed
is a variant's cost over a pass-through middleware:

    read      the request and response fields the adapter reads (the helper returns an inert handle)
    segment   begin_segment and end_segment_by_handle alone (no request fields), nothing sent
    begin     read, then the request helper's begin (fields, segment, handle); the handle is never
              finished, the context is cleared after
    record    the whole middleware, with emission a no-op
    encode    the same, and the document built and encoded, then dropped
    send      the same, and handed to the real background sender (waited for at each round's end)
    minimal   what any tracer must do, written inline with no SDK layers: the same request fields, a new
              entity id and trace id, the context variable set and cleared, the response header, the
              document as one dict literal, and the real background sender
    model     ``minimal`` with the segment begun and ended through the recorder (the ``Segment`` object,
              ``to_dict``), as the middleware does on a route whose handlers record; ``send`` (the
              middleware's own path for a handler that records nothing, with a deferred segment)
              minus ``minimal`` is what the SDK's layers add

Run from the repository root: PYTHONPATH=. python benchmarks/aiohttp_parts.py [--requests N] [--rounds R]
"""
import argparse
import asyncio
import os
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

from aws_like_sdk.core.emitters.encoding import encode_document
from aiohttp_bench import MALLOC_PINS, Connection, _time_requests  # noqa: E402 - benchmarks/ is the script directory

VARIANTS = ('pass', 'read', 'segment', 'begin', 'record', 'encode', 'send', 'minimal', 'model')


def _inert_handle(recorder: Any) -> Any:
    """A handle with nothing behind it: finishing it does nothing (as after a failed begin)."""
    from aws_like_sdk.core.models.trace_header import NO_TRACE_HEADER
    from aws_like_sdk.ext._http import RequestTrace
    return RequestTrace(recorder, None, NO_TRACE_HEADER, False, False)


class _SwitchingEmitter:
    """Does nothing, encodes and drops, or sends for real, as the current variant says."""

    # It only serializes what it gets, so the middleware defers its segments as with UDPEmitter.
    accepts_documents = True

    def __init__(self, real: Any, variant: List[str]) -> None:
        from aws_like_sdk.core.emitters.encoding import to_datagrams
        self._real = real
        self._variant = variant
        self._to_datagrams = to_datagrams

    def send_entity(self, entity: Any) -> None:
        variant = self._variant[0]
        if variant in ('send', 'model'):
            self._real.send_entity(entity)
        elif variant == 'encode':
            self._to_datagrams(entity.to_dict())

    def set_daemon_address(self, address: str) -> None:
        self._real.set_daemon_address(address)

    def flush(self, timeout: float = 2.0) -> bool:
        return self._real.flush(timeout)


class _Document:
    """An already-built document in the shape the emitter takes (``to_dict`` and ``sampled``)."""

    __slots__ = ('document',)
    sampled = True

    def __init__(self, document: Dict[str, Any]) -> None:
        self.document = document

    def to_dict(self) -> Dict[str, Any]:
        return self.document

    def serialize(self) -> str:
        # What Entity.serialize does (serialize-and-drop emitters call it).
        return encode_document(self.document).decode('utf-8')


def reference_variants(recorder: Any, emitter: Any, trace_header: Any) -> Tuple[Callable, Callable]:
    """The ``minimal`` and ``model`` variants: the tracing work written out by hand (see the docstring).

    ``minimal`` hands its document to ``emitter``; ``model`` emits through ``recorder``'s own emitter.
    Also used by ``instructions.py --layers``."""
    import contextvars

    from aws_like_sdk.core.recorder import SERVICE_INFO
    from aws_like_sdk.core.utils.ids import entity_id, trace_id_at

    current = contextvars.ContextVar('minimal_current', default=())
    aws_block = recorder._aws_metadata

    async def minimal(request: Any, handler: Callable) -> Any:
        headers = request.headers
        url = '%s://%s%s' % (request.scheme, request.host, request.rel_url.raw_path)
        user_agent, remote = headers.get('User-Agent'), request.remote
        headers.get(trace_header)
        own_id, start = entity_id(), time.time()
        trace_id = trace_id_at(start)
        current.set((own_id,))
        response = await handler(request)
        response.headers[trace_header] = 'Root=' + trace_id
        document = {'id': own_id, 'name': 'bench', 'start_time': start, 'trace_id': trace_id, 'in_progress': False,
                    'end_time': time.time(), 'aws': aws_block, 'service': SERVICE_INFO,
                    'http': {'request': {'url': url, 'method': request.method, 'user_agent': user_agent,
                                         'client_ip': remote},
                             'response': {'status': response.status, 'content_length': response.content_length}}}
        current.set(())
        emitter.send_entity(_Document(document))
        return response

    async def model(request: Any, handler: Callable) -> Any:
        headers = request.headers
        url = '%s://%s%s' % (request.scheme, request.host, request.rel_url.raw_path)
        user_agent, remote = headers.get('User-Agent'), request.remote
        headers.get(trace_header)
        segment = recorder.begin_segment('bench', None, None, 1)
        segment.http = {'request': {'url': url, 'method': request.method, 'user_agent': user_agent,
                                    'client_ip': remote}}
        response = await handler(request)
        response.headers[trace_header] = 'Root=' + segment.trace_id
        segment.http['response'] = {'status': response.status, 'content_length': response.content_length}
        recorder.end_segment_by_handle(segment)
        return response

    return minimal, model


async def _run(requests: int, rounds: int) -> Dict[str, float]:
    from aiohttp import web

    from aws_like_sdk.core import xray_recorder
    from aws_like_sdk.core.async_context import AsyncContext
    from aws_like_sdk.ext.aiohttp import middleware as adapter

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(('127.0.0.1', 0))
    variant = ['pass']
    xray_recorder.configure(service='bench', sampling=False, context=AsyncContext(), context_missing='IGNORE_ERROR',
                            daemon_address='127.0.0.1:%d' % sink.getsockname()[1])
    xray_recorder.configure(emitter=_SwitchingEmitter(xray_recorder.emitter, variant))
    real_begin = adapter.begin_request_for
    inert = _inert_handle(xray_recorder)

    def no_helper(*fields: Any) -> Any:
        """The request helper in the 'read' rounds: the adapter reads request and response, nothing else."""
        return inert

    def begin_only(*fields: Any) -> Any:
        """The request helper in the 'begin' rounds: the segment is begun, and its handle never finished."""
        real_begin(*fields)
        return inert

    async def segment(request: web.Request, handler: Callable) -> web.StreamResponse:
        entity = xray_recorder.begin_segment('bench', None, None, 1)
        response = await handler(request)
        xray_recorder.end_segment_by_handle(entity)
        return response

    async def begin(request: web.Request, handler: Callable) -> web.StreamResponse:
        response = await adapter.middleware(request, handler)
        xray_recorder.clear_trace_entities()  # what ending the segment does to the context
        return response

    async def passthrough(request: web.Request, handler: Callable) -> web.StreamResponse:
        return await handler(request)

    minimal, model = reference_variants(xray_recorder, xray_recorder.emitter._real, adapter._XRAY_HEADER)

    # Every variant is called the same way, one coroutine below the dispatching middleware.
    parts = {'pass': passthrough, 'read': adapter.middleware, 'segment': segment, 'begin': begin,
             'record': adapter.middleware, 'encode': adapter.middleware, 'send': adapter.middleware,
             'minimal': minimal, 'model': model}

    @web.middleware
    async def dispatch(request: web.Request, handler: Callable) -> web.StreamResponse:
        return await parts[variant[0]](request, handler)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text='ok')

    app = web.Application(middlewares=[dispatch])
    app.router.add_get('/items/{item_id}', handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, '127.0.0.1', 0).start()
    conn = await Connection.open(runner.addresses[0][1])
    loop = asyncio.get_running_loop()
    samples: Dict[str, List[float]] = {name: [] for name in VARIANTS}
    def select(name: str) -> None:
        variant[0] = name
        adapter.begin_request_for = {'read': no_helper, 'begin': begin_only}.get(name, real_begin)

    try:
        for name in VARIANTS:
            select(name)
            await _time_requests(conn, 300)
        for _ in range(rounds):
            for name in VARIANTS:
                select(name)
                start = time.perf_counter()
                for _ in range(requests):
                    await conn.request()
                # Every variant waits the same way; only 'send' leaves the sender anything to do.
                await loop.run_in_executor(None, xray_recorder.emitter.flush, 10)
                samples[name].append((time.perf_counter() - start) / requests * 1e6)
    finally:
        adapter.begin_request_for = real_begin
        conn.close()
        await runner.cleanup()
        sink.close()
    return {name: min(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=1500, help='requests per round and variant')
    parser.add_argument('--rounds', type=int, default=12, help='interleaved rounds')
    args = parser.parse_args()
    missing = {key: value for key, value in MALLOC_PINS.items() if key not in os.environ}
    if missing:
        # glibc reads these at start-up (see aiohttp_bench): run again with them set.
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **missing))
    best = asyncio.run(_run(args.requests, args.rounds))
    base = best['pass']
    print('aiohttp middleware parts, one loop, best of %d rounds x %d requests (us/request over a pass-through)'
          % (args.rounds, args.requests))
    for name in VARIANTS:
        print('  %-8s %6.1f us/request   %+6.1f us' % (name, best[name], best[name] - base))


if __name__ == '__main__':
    main()
