"""Per-request cost the Flask middleware adds: aws_like_sdk versus aws-xray-sdk, in the same run.

Each variant is the same three-line Flask app, called through ``app.wsgi_app`` with a prebuilt WSGI
environ (no test client, no sockets for the request itself), so the difference to the bare app is
the middleware's work: request hooks, segment building, the response header and emission. Both
SDKs emit real UDP datagrams to a local socket that drains them.

Run from the repository root: PYTHONPATH=. python benchmarks/flask_bench.py [requests]
"""
import gc
import io
import statistics
import subprocess
import sys
import time

from flask import Flask

from _emitters import DropEmitter, flush_ours  # noqa: E402 - benchmarks/ is the script directory

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
ROUNDS = 7


def make_app(name):
    app = Flask(name)

    @app.route('/users/<int:user_id>')
    def user(user_id):
        return 'ok'

    return app


def environ():
    return {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/users/7', 'SCRIPT_NAME': '', 'QUERY_STRING': 'a=1',
            'SERVER_NAME': 'localhost', 'SERVER_PORT': '80', 'SERVER_PROTOCOL': 'HTTP/1.1',
            'HTTP_HOST': 'api.example.com', 'HTTP_USER_AGENT': 'bench/1.0', 'REMOTE_ADDR': '127.0.0.1',
            'HTTP_X_AMZN_TRACE_ID': 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1',
            'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(b''), 'wsgi.errors': sys.stderr,
            'wsgi.multithread': False, 'wsgi.multiprocess': False, 'wsgi.run_once': False, 'wsgi.version': (1, 0)}


def start_response(status, headers, exc_info=None):
    return None


_DRAIN_CODE = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
sock.bind(('127.0.0.1', 0))
print(sock.getsockname()[1], flush=True)
sock.settimeout(60)
try:
    while True:
        sock.recv(70000)
except (socket.timeout, KeyboardInterrupt):
    pass
"""


class Drain:
    """A UDP reader in its own process, standing in for the daemon (so it never competes for our GIL)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, '-c', _DRAIN_CODE], stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline())
        self.address = '127.0.0.1:%d' % port

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)


def per_request_us(app):
    wsgi = app.wsgi_app
    for _ in range(200):  # warm-up
        body = wsgi(environ(), start_response)
        b''.join(body)
        body.close()
    samples = []
    for _ in range(ROUNDS):
        envs = [environ() for _ in range(N)]
        gc.collect()
        start = time.perf_counter()
        for env in envs:
            body = wsgi(env, start_response)
            b''.join(body)
            body.close()
        flush_ours()  # work our background sender still has queued counts for this round
        samples.append((time.perf_counter() - start) / N * 1e6)
    return min(samples), statistics.median(samples)


def build_variants(drain, emit):
    from aws_like_sdk.core import xray_recorder as ours
    from aws_like_sdk.ext.flask.middleware import XRayMiddleware as OurMiddleware
    ours.configure(service='bench', sampling=False, daemon_address=drain.address)
    if not emit:
        ours.configure(emitter=DropEmitter())
    ours_app = make_app('ours-%s' % emit)
    OurMiddleware(ours_app, ours)
    variants = [('bare Flask', make_app('bare-%s' % emit)), ('aws_like_sdk', ours_app)]
    try:
        from aws_xray_sdk.core import xray_recorder as theirs
        from aws_xray_sdk.ext.flask.middleware import XRayMiddleware as TheirMiddleware
    except ImportError:
        return variants
    import logging
    logging.getLogger('aws_xray_sdk').setLevel(logging.ERROR)
    theirs.configure(service='bench', sampling=False, daemon_address=drain.address, context_missing='LOG_ERROR')
    if not emit:
        theirs.configure(emitter=DropEmitter())
    upstream_app = make_app('upstream-%s' % emit)
    TheirMiddleware(upstream_app, theirs)
    variants.append(('aws-xray-sdk', upstream_app))
    return variants


def measure(variants):
    results = {}
    # Interleave the variants so that machine noise hits all of them alike.
    for _ in range(2):
        for name, app in variants:
            best, median = per_request_us(app)
            prev = results.get(name)
            results[name] = (min(best, prev[0]) if prev else best, min(median, prev[1]) if prev else median)
    return results


def report(title, results):
    base_best, base_median = results['bare Flask']
    print('%s, %d requests x %d rounds (us/request; best, median)' % (title, N, ROUNDS))
    for name, (best, median) in results.items():
        extra = ''
        if name != 'bare Flask':
            extra = '   added: %6.1f us (median %6.1f us)' % (best - base_best, median - base_median)
        print('  %-14s %7.1f %7.1f%s' % (name, best, median, extra))
    if 'aws-xray-sdk' in results:
        ours_added = results['aws_like_sdk'][1] - base_median
        theirs_added = results['aws-xray-sdk'][1] - base_median
        print('  ratio of added cost (median), aws_like_sdk / aws-xray-sdk: %.2f' % (ours_added / theirs_added))


def main():
    drain = Drain()
    try:
        report('Flask middleware, UDP emission to a reader process', measure(build_variants(drain, emit=True)))
        report('Flask middleware, emission replaced by serialize-and-drop', measure(build_variants(drain, emit=False)))
    finally:
        drain.close()


if __name__ == '__main__':
    main()
