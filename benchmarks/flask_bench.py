"""Per-request cost the Flask middleware adds: aws_like_sdk versus aws-xray-sdk, in the same run.

Each variant is the same three-line Flask app, called through ``app.wsgi_app`` with a prebuilt WSGI
environ (no test client, no sockets for the request itself), so the difference to the bare app is
the middleware's work: request hooks, segment building, the response header and emission. Both
SDKs emit real UDP datagrams to a local socket that drains them.

Run from the repository root: PYTHONPATH=. python benchmarks/flask_bench.py [requests]
"""
import gc
import io
import socket
import statistics
import sys
import threading
import time

from flask import Flask

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


class Drain:
    """A UDP socket on loopback that reads and discards datagrams, standing in for the daemon."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.settimeout(0.1)
        self.address = '127.0.0.1:%d' % self.sock.getsockname()[1]
        self.count = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                self.sock.recv(70000)
                self.count += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


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
        samples.append((time.perf_counter() - start) / N * 1e6)
    return min(samples), statistics.median(samples)


def main():
    drain = Drain()
    bare = make_app('bare')

    from aws_like_sdk.core import xray_recorder as ours
    from aws_like_sdk.ext.flask.middleware import XRayMiddleware as OurMiddleware
    ours.configure(service='bench', sampling=False, daemon_address=drain.address)
    ours_app = make_app('ours')
    OurMiddleware(ours_app, ours)

    results = {}
    upstream_app = None
    try:
        from aws_xray_sdk.core import xray_recorder as theirs
        from aws_xray_sdk.ext.flask.middleware import XRayMiddleware as TheirMiddleware
    except ImportError:
        theirs = None
    if theirs is not None:
        import logging
        logging.getLogger('aws_xray_sdk').setLevel(logging.ERROR)
        theirs.configure(service='bench', sampling=False, daemon_address=drain.address, context_missing='LOG_ERROR')
        upstream_app = make_app('upstream')
        TheirMiddleware(upstream_app, theirs)

    # Interleave the variants so that machine noise hits all of them alike.
    variants = [('bare Flask', bare), ('aws_like_sdk', ours_app)]
    if upstream_app is not None:
        variants.append(('aws-xray-sdk', upstream_app))
    for _ in range(2):
        for name, app in variants:
            best, median = per_request_us(app)
            prev = results.get(name)
            results[name] = (min(best, prev[0]) if prev else best, min(median, prev[1]) if prev else median)
    drain.close()

    base_best, base_median = results['bare Flask']
    print('Flask middleware, %d requests x %d rounds (us/request; best, median)' % (N, ROUNDS))
    for name, (best, median) in results.items():
        extra = ''
        if name != 'bare Flask':
            extra = '   added: %6.1f us (median %6.1f us)' % (best - base_best, median - base_median)
        print('  %-14s %7.1f %7.1f%s' % (name, best, median, extra))
    if 'aws-xray-sdk' in results:
        ours_added = results['aws_like_sdk'][1] - base_median
        theirs_added = results['aws-xray-sdk'][1] - base_median
        print('  ratio of added cost (median), aws_like_sdk / aws-xray-sdk: %.2f' % (ours_added / theirs_added))


if __name__ == '__main__':
    main()
