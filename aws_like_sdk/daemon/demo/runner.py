"""Runs the demo: a daemon child process, the sample app, traffic, trace trees, the viewer URL."""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

from ..address import Address, format_address
from ..client import ApiSource, SourceError
from ..render import render_trace

READY_TIMEOUT = 20.0
STORE_TIMEOUT = 15.0


def _port_free(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(('127.0.0.1', port))
            return True
        except OSError:
            return False


def _addresses(tcp: Optional[str]) -> Tuple[str, str]:
    if tcp:
        return '127.0.0.1:0', tcp
    # The standard address when it is free, so SDK apps and the viewer keep working after the demo.
    if _port_free(socket.SOCK_DGRAM, 2000) and _port_free(socket.SOCK_STREAM, 2000):
        return '127.0.0.1:2000', '127.0.0.1:2000'
    return '127.0.0.1:0', '127.0.0.1:0'


def start_daemon(db: str, workdir: str, tcp: Optional[str]) -> Tuple[subprocess.Popen, dict]:
    """Start ``python -m aws_like_sdk.daemon`` and wait for its ready file."""
    udp_arg, tcp_arg = _addresses(tcp)
    ready = os.path.join(workdir, 'ready.json')
    log = open(os.path.join(workdir, 'daemon.log'), 'w')
    env = dict(os.environ)
    env.pop('AWS_XRAY_DAEMON_ADDRESS', None)
    proc = subprocess.Popen([sys.executable, '-m', 'aws_like_sdk.daemon', '--udp', udp_arg, '--tcp', tcp_arg,
                             '--db', db, '--ready-file', ready, '--log-level', 'WARNING'],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            with open(os.path.join(workdir, 'daemon.log')) as handle:
                raise RuntimeError('the daemon did not start:\n' + handle.read())
        time.sleep(0.05)
    with open(ready) as handle:
        return proc, json.load(handle)


def _progress(done: int, total: int, failures: int, width: int = 30) -> None:
    if not sys.stdout.isatty() and done < total:
        return  # a log file gets the final bar only, not one redraw per request
    filled = int(width * done / max(total, 1))
    sys.stdout.write('\r  [%s%s] %d/%d requests%s' % ('#' * filled, '.' * (width - filled), done, total,
                                                      '  (%d failed)' % failures if failures else ''))
    sys.stdout.flush()


def _wait_stored(source: ApiSource, expected: int) -> int:
    deadline = time.monotonic() + STORE_TIMEOUT
    count = 0
    while time.monotonic() < deadline:
        count = len(source.list({'limit': 1000})['traces'])
        if count >= expected:
            break
        time.sleep(0.2)
    time.sleep(0.3)  # the last streamed documents of a trace may trail its segment
    return count


def _showcase(source: ApiSource) -> List[str]:
    """Trace ids worth printing: the failure, the richest product page, the product list."""
    picks = []
    for params in ({'flag': 'fault', 'limit': 1}, {'annotation': 'route=products', 'limit': 200},
                   {'service': 'shop-frontend', 'annotation': 'route=products', 'limit': 1}):
        traces = source.list(params)['traces']
        if params.get('limit') == 200:
            traces = sorted(traces, key=lambda t: (t['documents'], t['duration'] or 0), reverse=True)[:1]
        picks.extend(t['trace_id'] for t in traces if t['trace_id'] not in picks)
    return picks[:2]


def run(args: argparse.Namespace) -> int:
    """Entry point of ``aws-like-sdk demo``."""
    from aws_like_sdk.core import patch, xray_recorder

    from .app import DemoApp

    total = max(1, args.requests)
    workdir = tempfile.mkdtemp(prefix='aws-like-sdk-demo-')
    db = args.db or os.path.join(workdir, 'demo.sqlite3')
    color = sys.stdout.isatty() and not os.environ.get('NO_COLOR')
    print('Starting the aws-like-sdk daemon...')
    try:
        proc, info = start_daemon(db, workdir, args.tcp)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    udp: Address = tuple(info['udp'])
    tcp: Address = tuple(info['tcp'])
    app = None
    try:
        print('  segments to UDP %s, viewer at %s, store %s' % (format_address(udp), info['viewer'], db))
        os.environ.pop('AWS_XRAY_DAEMON_ADDRESS', None)  # it would override the address below
        xray_recorder.configure(service='shop-frontend', sampling=False, context_missing='LOG_ERROR',
                                daemon_address='udp:%s tcp:%s' % (format_address(udp), format_address(tcp)))
        patch(['sqlite3'])
        app = DemoApp()
        paths = app.plan(total)
        print('Sending %d requests to the instrumented shop (front end %s, inventory %s):'
              % (len(paths), app.frontend.url, app.inventory.url))
        failures = 0
        for done, path in enumerate(paths, start=1):
            if app.get(path) >= 500:
                failures += 1
            _progress(done, len(paths), failures)
        print()
        source = ApiSource(tcp)
        stored = _wait_stored(source, len(paths))
        print('\nThe daemon stored %d traces. A few of them:\n' % stored)
        for trace_id in _showcase(source):
            trace = source.trace(trace_id)
            if trace is not None:
                print(render_trace(trace['summary'], trace['roots'], color))
                print()
        print('More in the terminal:  aws-like-sdk traces --tcp %s --limit 5' % format_address(tcp))
        print('Open the viewer:       %s' % info['viewer'])
        sys.stdout.flush()
        if args.exit:
            return 0
        print('\nServing the viewer; press Ctrl-C to stop.')
        try:
            while proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print()
        return 0
    except SourceError as exc:
        print('demo: %s' % exc, file=sys.stderr)
        return 1
    finally:
        if app is not None:
            app.stop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not args.db:
            shutil.rmtree(workdir, ignore_errors=True)
