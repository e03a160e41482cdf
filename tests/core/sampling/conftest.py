"""Fixtures for the sampling tests: a fake X-Ray daemon sampling proxy on loopback and a manual clock."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

import pytest

from aws_like_sdk.core.sampling.connector import ServiceConnector


class ManualClock:
    """Epoch-seconds clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rule_record(name: str, priority: int, rate: float = 0.0, size: int = 0, *, host: str = '*',
                method: str = '*', path: str = '*', service: str = '*', service_type: str = '*',
                version: int = 1, resource_arn: str = '*', attributes: Optional[dict] = None) -> Dict[str, Any]:
    """A ``SamplingRuleRecords`` entry as X-Ray returns it."""
    return {
        'SamplingRule': {
            'RuleName': name, 'RuleARN': 'arn:aws:xray:us-west-2:123456789012:sampling-rule/' + name,
            'ResourceARN': resource_arn, 'Priority': priority, 'FixedRate': rate, 'ReservoirSize': size,
            'ServiceName': service, 'ServiceType': service_type, 'Host': host, 'HTTPMethod': method,
            'URLPath': path, 'Version': version, 'Attributes': attributes or {},
        },
        'CreatedAt': 1.7e9, 'ModifiedAt': 1.7e9,
    }


DEFAULT_RECORD = rule_record('Default', 10000, rate=0.0, size=0)


class FakeDaemon:
    """A real HTTP server speaking the daemon's ``GetSamplingRules`` and ``SamplingTargets`` operations.

    ``rule_pages`` is a list of pages; every page but the last carries a NextToken. ``targets`` is the
    response body for SamplingTargets (or a callable taking the request body). ``mode`` forces a failure:
    ``'500'``, ``'garbage'`` or ``'slow'`` (answers after ``slow_seconds``).
    """

    def __init__(self) -> None:
        self.rule_pages: List[List[Dict[str, Any]]] = [[DEFAULT_RECORD]]
        self.targets: Any = {'SamplingTargetDocuments': [], 'LastRuleModification': 0,
                             'UnprocessedStatistics': []}
        self.mode: Optional[str] = None
        self.slow_seconds = 1.0
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else None
                with daemon.lock:
                    daemon.requests.append({'path': self.path, 'body': body,
                                            'content_type': self.headers.get('Content-Type'),
                                            'authorization': self.headers.get('Authorization')})
                    mode = daemon.mode
                if mode == 'slow':
                    time.sleep(daemon.slow_seconds)
                if mode == '500':
                    self._send(500, json.dumps({'__type': 'InternalFailure', 'message': 'boom'}).encode())
                    return
                if mode == 'garbage':
                    self._send(200, b'<html>not json')
                    return
                if self.path == '/GetSamplingRules':
                    self._send(200, json.dumps(daemon.rules_page(body or {})).encode())
                elif self.path == '/SamplingTargets':
                    targets = daemon.targets(body) if callable(daemon.targets) else daemon.targets
                    self._send(200, json.dumps(targets).encode())
                else:
                    self._send(404, b'{"__type":"UnknownOperationException"}')

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (slow mode)
                    pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05},
                                       name='fake-xray-daemon', daemon=True)

    def rules_page(self, body: Dict[str, Any]) -> Dict[str, Any]:
        index = int(body.get('NextToken') or 0)
        page: Dict[str, Any] = {'SamplingRuleRecords': self.rule_pages[index]}
        if index + 1 < len(self.rule_pages):
            page['NextToken'] = str(index + 1)
        return page

    def set_rules(self, *records: Dict[str, Any]) -> None:
        self.rule_pages = [list(records)]

    def paths(self) -> List[str]:
        with self.lock:
            return [request['path'] for request in self.requests]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    @property
    def port(self) -> int:
        return self.server.server_address[1]


@pytest.fixture
def fake_daemon():
    daemon = FakeDaemon()
    daemon.thread.start()
    try:
        yield daemon
    finally:
        daemon.server.shutdown()
        daemon.server.server_close()
        daemon.thread.join(5)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def connector(fake_daemon, clock):
    return ServiceConnector('127.0.0.1', fake_daemon.port, timeout=1.0, clock=clock)


@pytest.fixture(autouse=True)
def _sdk_enabled(monkeypatch):
    # The suite must not depend on the developer's shell.
    monkeypatch.delenv('AWS_XRAY_SDK_ENABLED', raising=False)
    monkeypatch.delenv('AWS_XRAY_DAEMON_ADDRESS', raising=False)
