"""Added cost per request of the Django middleware: aws_like_sdk versus aws-xray-sdk, same process.

A trivial view is requested through Django's test client (and, second table, through Django's
real ASGIHandler with an async view) with no middleware, with aws_like_sdk's XRayMiddleware and
with aws_xray_sdk's XRayMiddleware. Both recorders sample every request and send real UDP
datagrams to a loopback socket, so serialisation and sending are included.
The added cost is (time with middleware) - (time without); rounds are interleaved and the best
round is kept to damp noise.

Run from the repository root: PYTHONPATH=. python benchmarks/django_bench.py [--requests N] [--rounds R] [--drop]
(``--drop`` serializes each segment and drops it instead of sending it, to see the recording cost alone.)
"""
import argparse
import asyncio
import gc
import socket
import time
from typing import Callable, Dict, List

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from _emitters import DropEmitter, flush_ours  # noqa: E402 - benchmarks/ is the script directory


async def async_view(request):
    return HttpResponse('ok')


def view(request):
    return HttpResponse('ok')


urlpatterns = [path('', view), path('async/', async_view)]

OURS = 'aws_like_sdk.ext.django.middleware.XRayMiddleware'
UPSTREAM = 'aws_xray_sdk.ext.django.middleware.XRayMiddleware'


class Sink:
    """A bound loopback UDP socket that nobody reads.

    Every datagram is really sent (a full syscall, the same for both SDKs) and queued, or dropped by
    the kernel once the queue is full; no receiver wakes up, so nothing competes with the measured
    process for the CPU, which on small machines otherwise dominates the noise.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.address = '127.0.0.1:%d' % self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def setup(sink: Sink, drop: bool = False) -> Dict[str, object]:
    settings.configure(
        DEBUG=False, SECRET_KEY='bench', ALLOWED_HOSTS=['testserver'], ROOT_URLCONF=__name__, MIDDLEWARE=[],
        INSTALLED_APPS=[], DATABASES={}, USE_TZ=True, LOGGING_CONFIG=None,
        XRAY_RECORDER={'AWS_XRAY_TRACING_NAME': 'bench', 'URLS_AS_ANNOTATION': 'NONE'})
    django.setup()

    from aws_like_sdk.core import xray_recorder as ours
    from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter as OurEmitter
    ours.configure(service='bench', sampling=False, emitter=DropEmitter() if drop else OurEmitter(sink.address))

    available = {'none': [], 'aws_like_sdk': [OURS]}
    try:
        from aws_xray_sdk.core import xray_recorder as upstream
        from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter as UpstreamEmitter
    except ImportError:
        print('aws-xray-sdk is not installed: comparison skipped')
    else:
        upstream.configure(service='bench', sampling=False,
                           emitter=DropEmitter() if drop else UpstreamEmitter(sink.address),
                           context_missing='LOG_ERROR')
        available['aws_xray_sdk'] = [UPSTREAM]
    return available


def wsgi_runner(middleware: List[str]) -> Callable[[int], float]:
    from django.test import Client, override_settings
    client = Client()
    with override_settings(MIDDLEWARE=middleware):
        # The handler builds its middleware chain on the first request, from the settings of the moment.
        assert client.get('/').status_code == 200

    def run(n: int) -> float:
        get = client.get
        start = time.perf_counter()
        for _ in range(n):
            get('/')
        flush_ours()  # work our background sender still has queued counts for this run
        return time.perf_counter() - start

    return run


def asgi_runner(middleware: List[str]) -> Callable[[int], float]:
    from django.core.handlers.asgi import ASGIHandler
    from django.test import override_settings
    with override_settings(MIDDLEWARE=middleware):
        app = ASGIHandler()
        app.load_middleware(is_async=True)
    scope = {'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'GET',
             'scheme': 'http', 'path': '/async/', 'raw_path': b'/async/', 'query_string': b'', 'root_path': '',
             'headers': [(b'host', b'testserver')], 'client': ('127.0.0.1', 5000), 'server': ('testserver', 80)}

    body = {'type': 'http.request', 'body': b'', 'more_body': False}

    def receiver() -> Callable:
        sent = []

        async def receive():
            if not sent:
                sent.append(True)
                return body
            # Like a server whose client stays connected: Django cancels this once it has responded.
            await asyncio.Event().wait()

        return receive

    async def send(message):
        pass

    loop = asyncio.new_event_loop()

    async def many(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receiver(), send)
        flush_ours()
        return time.perf_counter() - start

    loop.run_until_complete(many(5))

    def run(n: int) -> float:
        return loop.run_until_complete(many(n))

    return run


def measure(title: str, runners: Dict[str, Callable[[int], float]], requests: int, rounds: int) -> None:
    best = {name: float('inf') for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():  # interleaved, so drift hits every variant alike
            gc.collect()
            best[name] = min(best[name], run(requests) / requests)
    base = best['none']
    print('\n%s (%d requests x %d rounds, best round)' % (title, requests, rounds))
    print('%-16s %12s %14s' % ('middleware', 'us/request', 'added us/req'))
    for name, seconds in best.items():
        added = '' if name == 'none' else '%14.1f' % ((seconds - base) * 1e6)
        print('%-16s %12.1f %s' % (name, seconds * 1e6, added))
    if 'aws_xray_sdk' in best:
        ours = best['aws_like_sdk'] - base
        upstream = best['aws_xray_sdk'] - base
        if upstream > 0:
            print('aws_like_sdk added cost = %.2fx aws_xray_sdk added cost' % (ours / upstream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=3000)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--drop', action='store_true',
                        help='serialize each segment and drop it instead of sending it (both SDKs)')
    args = parser.parse_args()
    sink = Sink()
    try:
        variants = setup(sink, args.drop)
        if args.drop:
            print('emission replaced by serialize-and-drop')
        measure('Test client, sync view', {name: wsgi_runner(mw) for name, mw in variants.items()},
                args.requests, args.rounds)
        measure('ASGIHandler, async view', {name: asgi_runner(mw) for name, mw in variants.items()},
                args.requests, args.rounds)
    finally:
        sink.close()


if __name__ == '__main__':
    main()
