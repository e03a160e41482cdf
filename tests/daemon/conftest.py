"""Fixtures for the daemon tests: a real daemon process on ephemeral loopback ports."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional

import pytest

HEADER = b'{"format":"json","version":1}\n'
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def new_trace_id(offset: float = 0.0) -> str:
    return '1-%08x-%s' % (int(time.time() + offset), os.urandom(12).hex())


def new_id() -> str:
    return os.urandom(8).hex()


def segment(name: str = 'svc', trace_id: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
    """A complete segment document with fresh ids."""
    now = time.time()
    doc = {'name': name, 'id': new_id(), 'trace_id': trace_id or new_trace_id(), 'start_time': now - 0.05,
           'end_time': now}
    doc.update(fields)
    return doc


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('condition not met within %.1f s' % timeout)
        time.sleep(interval)


class DaemonProcess:
    """A daemon started with ``python -m aws_like_sdk.daemon`` and what is needed to talk to it."""

    def __init__(self, workdir: str, extra_args: List[str] = (), env: Optional[Dict[str, str]] = None) -> None:
        self.workdir = workdir
        self.db = os.path.join(workdir, 'traces.sqlite3')
        ready = os.path.join(workdir, 'ready.json')
        self.log_path = os.path.join(workdir, 'daemon.log')
        self._log = open(self.log_path, 'w')
        full_env = dict(os.environ, PYTHONUNBUFFERED='1')
        full_env.pop('AWS_XRAY_DAEMON_ADDRESS', None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'aws_like_sdk.daemon', '--udp', '127.0.0.1:0', '--tcp', '127.0.0.1:0',
             '--db', self.db, '--ready-file', ready] + list(extra_args),
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        try:
            wait_for(lambda: os.path.exists(ready) or self.proc.poll() is not None, timeout=20)
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError('daemon exited: %s' % self.log())
        with open(ready) as handle:
            info = json.load(handle)
        self.udp = tuple(info['udp'])
        self.tcp = tuple(info['tcp'])
        self.base = 'http://%s:%d' % self.tcp
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as handle:
            return handle.read()

    def send_raw(self, data: bytes) -> None:
        self._sock.sendto(data, self.udp)

    def send(self, *documents: Dict[str, Any], compact: bool = True) -> None:
        for doc in documents:
            body = json.dumps(doc, separators=(',', ':') if compact else None)
            self.send_raw(HEADER + body.encode('utf-8'))

    def get(self, path: str, headers: Optional[Dict[str, str]] = None) -> Any:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        with _OPENER.open(request, timeout=10) as response:
            return json.loads(response.read())

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None):
        """``(status, headers, body bytes)`` without raising on HTTP errors."""
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with _OPENER.open(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def stats(self) -> Dict[str, Any]:
        return self.get('/api/stats')

    def counter(self, name: str) -> int:
        return self.stats()['counters'].get(name, 0)

    def wait_stored(self, count: int, timeout: float = 10.0) -> None:
        wait_for(lambda: self.counter('stored') >= count, timeout)

    def trace(self, trace_id: str) -> Optional[Dict[str, Any]]:
        status, _, body = self.request('GET', '/api/traces/' + trace_id)
        return json.loads(body) if status == 200 else None

    def wait_trace(self, trace_id: str, documents: int = 1, timeout: float = 10.0) -> Dict[str, Any]:
        def ready():
            trace = self.trace(trace_id)
            return trace if trace and trace['summary']['documents'] >= documents else None
        return wait_for(ready, timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_daemon():
    """Factory: ``start_daemon(*args, env=...)`` starts a daemon process, stopped after the test."""
    started = []
    dirs = []

    def start(*args: str, env: Optional[Dict[str, str]] = None) -> DaemonProcess:
        workdir = tempfile.mkdtemp(prefix='aws-like-daemon-')
        dirs.append(workdir)
        daemon = DaemonProcess(workdir, list(args), env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    for workdir in dirs:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope='module')
def daemon():
    """One daemon process shared by a test module (tests use fresh trace ids)."""
    workdir = tempfile.mkdtemp(prefix='aws-like-daemon-')
    process = DaemonProcess(workdir)
    yield process
    process.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def chromium_path() -> Optional[str]:
    return shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')


def dump_dom(url: str, budget_ms: int = 5000, timeout: float = 40.0) -> str:
    """The DOM of ``url`` after its scripts ran, from real headless Chromium."""
    browser = chromium_path()
    if browser is None:
        pytest.skip('chromium is not installed')
    profile = tempfile.mkdtemp(prefix='aws-like-chromium-')
    try:
        result = subprocess.run(
            [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--user-data-dir=' + profile, '--virtual-time-budget=%d' % budget_ms, '--dump-dom', url],
            capture_output=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return result.stdout.decode('utf-8', 'replace')
