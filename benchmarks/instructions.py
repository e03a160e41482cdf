"""CPU instructions each SDK's middleware adds per request (Flask, Django, aiohttp), under cachegrind.

Wall-clock figures on a shared machine move by a third between runs; instruction counts repeat to
within about one percent, so this is the figure to compare two versions of the code by. Each
(framework, variant) runs in its own process under ``valgrind --tool=cachegrind --cache-sim=yes``
twice, with two request counts after the same warm-up; the difference divided by the difference in
requests is the per-request count, free of start-up and import costs. Both SDKs sample every request
and serialize each segment, then drop it (no socket: cachegrind does not see kernel work, and the
sender thread's batching depends on timing, which valgrind slows fiftyfold). The cache simulation's
L1 instruction and data misses are reported too: inside a request they cost more than instructions.

``--layers`` adds two aiohttp rows from ``aiohttp_parts.py``: ``minimal``, the tracing work any tracer
must do written inline, and ``model``, the same with the segment begun and ended through our recorder.
Between them and ``aws_like_sdk`` they show what the object model and the request helper cost.

Needs valgrind. Run from the repository root:
    PYTHONPATH=. python benchmarks/instructions.py [--frameworks flask,django,aiohttp] [--layers]
"""
import argparse
import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ('plain', 'aws_like_sdk', 'aws_xray_sdk')
# With --layers (aiohttp only): aiohttp_parts' hand-written middlewares, the same work without our layers.
LAYERS = ('minimal', 'model')
COUNTS = (300, 1300)
WARM_UP = 200
EVENTS = (('instructions', r'I\s+refs:\s+([\d,]+)'), ('L1i misses', r'I1\s+misses:\s+([\d,]+)'),
          ('L1d misses', r'D1\s+misses:\s+([\d,]+)'))


# -- children: one framework, one variant, a number of requests ---------------------------------------
def _flask(variant: str, requests: int) -> None:
    sys.argv[1:] = []  # flask_bench reads its request count from the command line at import
    import flask_bench
    from _emitters import DropEmitter
    app = flask_bench.make_app('bench')
    if variant == 'aws_like_sdk':
        from aws_like_sdk.core import xray_recorder
        from aws_like_sdk.ext.flask.middleware import XRayMiddleware
    elif variant == 'aws_xray_sdk':
        from aws_xray_sdk.core import xray_recorder
        from aws_xray_sdk.ext.flask.middleware import XRayMiddleware
    if variant != 'plain':
        xray_recorder.configure(service='bench', sampling=False, emitter=DropEmitter(), context_missing='LOG_ERROR')
        XRayMiddleware(app, xray_recorder)
    wsgi = app.wsgi_app
    for _ in range(WARM_UP + requests):
        body = wsgi(flask_bench.environ(), flask_bench.start_response)
        b''.join(body)
        body.close()


def _django(variant: str, requests: int) -> None:
    import django_bench
    available = django_bench.setup(django_bench.Sink(), drop=True)
    run = django_bench.wsgi_runner(available['none' if variant == 'plain' else variant])
    run(WARM_UP)
    run(requests)


def _aiohttp(variant: str, requests: int) -> None:
    import aiohttp_bench
    from aiohttp import web

    async def serve() -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text='ok')

        if variant in LAYERS:
            middlewares = [_aiohttp_layer(variant)]
        else:
            middlewares = [] if variant == 'plain' else aiohttp_bench._middlewares(variant, '127.0.0.1:9', drop=True)
        app = web.Application(middlewares=middlewares)
        app.router.add_get('/items/{item_id}', handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, '127.0.0.1', 0).start()
        conn = await aiohttp_bench.Connection.open(runner.addresses[0][1])
        try:
            for _ in range(WARM_UP + requests):
                await conn.request()
        finally:
            conn.close()
            await runner.cleanup()

    asyncio.run(serve())


def _aiohttp_layer(variant: str):
    """aiohttp_parts' hand-written ``minimal`` or ``model`` middleware, emitting to serialize-and-drop."""
    import aiohttp_parts
    from aiohttp import web
    from _emitters import DropEmitter

    from aws_like_sdk.core import xray_recorder
    from aws_like_sdk.core.async_context import AsyncContext
    from aws_like_sdk.ext.aiohttp.middleware import _XRAY_HEADER
    emitter = DropEmitter()
    xray_recorder.configure(service='bench', sampling=False, context=AsyncContext(), emitter=emitter,
                            context_missing='IGNORE_ERROR')
    minimal, model = aiohttp_parts.reference_variants(xray_recorder, emitter, _XRAY_HEADER)
    return web.middleware(minimal if variant == 'minimal' else model)


CHILDREN = {'flask': _flask, 'django': _django, 'aiohttp': _aiohttp}


# -- parent ---------------------------------------------------------------------------------------------
def _count(framework: str, variant: str, requests: int) -> Dict[str, int]:
    env = dict(os.environ, PYTHONHASHSEED='0',
               PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), HERE, os.environ.get('PYTHONPATH')])))
    command = ['valgrind', '--tool=cachegrind', '--cache-sim=yes', '--cachegrind-out-file=/dev/null',
               sys.executable, os.path.abspath(__file__), '--child', framework, variant, str(requests)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    counts = {}
    for name, pattern in EVENTS:
        match = re.search(pattern, proc.stderr)
        if proc.returncode != 0 or match is None:
            tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
            raise RuntimeError('%s/%s failed: %s' % (framework, variant, tail))
        counts[name] = int(match.group(1).replace(',', ''))
    return counts


def _per_request(framework: str, variant: str, pool: concurrent.futures.Executor) -> Dict[str, float]:
    low, high = (pool.submit(_count, framework, variant, n) for n in COUNTS)
    low_counts, high_counts = low.result(), high.result()
    return {name: (high_counts[name] - low_counts[name]) / (COUNTS[1] - COUNTS[0]) for name, _ in EVENTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    parser.add_argument('--frameworks', default='flask,django,aiohttp')
    parser.add_argument('--layers', action='store_true',
                        help="aiohttp: also count aiohttp_parts' minimal and model middlewares (see its docstring)")
    args = parser.parse_args()
    if args.child:
        framework, variant, requests = args.child
        CHILDREN[framework](variant, int(requests))
        return
    try:
        import aws_xray_sdk  # noqa: F401
        variants: Tuple[str, ...] = VARIANTS
    except ImportError:
        variants = VARIANTS[:2]
    with concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        for framework in args.frameworks.split(','):
            counted = variants + (LAYERS if args.layers and framework == 'aiohttp' else ())
            per = {variant: _per_request(framework, variant, pool) for variant in counted}
            print('%s (per request; added = variant minus plain):' % framework)
            added: Dict[str, List[float]] = {}
            for variant in counted[1:]:
                added[variant] = [per[variant][name] - per['plain'][name] for name, _ in EVENTS]
                print('  %-13s ' % variant + '   '.join('%s %8.0f' % (name, value)
                                                        for (name, _), value in zip(EVENTS, added[variant])))
            if 'aws_xray_sdk' in added:
                print('  ratio         ' + '   '.join('%s %8.2f' % (name, ours / theirs if theirs else float('nan'))
                                                      for (name, _), ours, theirs
                                                      in zip(EVENTS, added['aws_like_sdk'], added['aws_xray_sdk'])))


if __name__ == '__main__':
    main()
