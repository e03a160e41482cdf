"""A loopback stand-in for the daemon's sampling API whose answers a test scripts.

Each request is answered by the next entry of ``script`` (cycling): ``'ok'`` for a valid answer, or one
of the faults in :data:`FAULTS`. Bounded: every handler has a socket timeout and the server thread is
shut down by :meth:`SamplingServer.close`.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Sequence

FAULTS = ('http500', 'garbage', 'truncated', 'wrong_types', 'empty', 'close', 'html', 'huge_numbers', 'slow')


def rules_response(rate: float = 1.0, reservoir: int = 0) -> Dict[str, Any]:
    return {'SamplingRuleRecords': [{'SamplingRule': {
        'RuleName': 'Default', 'RuleARN': 'arn:aws:xray:local:000000000000:sampling-rule/Default',
        'Priority': 10000, 'FixedRate': rate, 'ReservoirSize': reservoir, 'ServiceName': '*',
        'ServiceType': '*', 'Host': '*', 'HTTPMethod': '*', 'URLPath': '*', 'ResourceARN': '*',
        'Version': 1, 'Attributes': {}}}]}


def targets_response(body: Dict[str, Any]) -> Dict[str, Any]:
    names = [d.get('RuleName') for d in body.get('SamplingStatisticsDocuments', [])]
    return {'SamplingTargetDocuments': [{'RuleName': n, 'FixedRate': 1.0, 'ReservoirQuota': 5,
                                         'ReservoirQuotaTTL': time.time() + 60, 'Interval': 10} for n in names],
            'LastRuleModification': 0, 'UnprocessedStatistics': []}


class SamplingServer:
    """Serves ``/GetSamplingRules`` and ``/SamplingTargets`` on 127.0.0.1 (ephemeral port)."""

    def __init__(self, script: Sequence[str] = ('ok',), slow_seconds: float = 1.0) -> None:
        self.script: List[str] = list(script)
        self.slow_seconds = slow_seconds
        self.requests: List[Dict[str, Any]] = []
        self._count = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b'{}')
                except ValueError:
                    body = {}
                server._answer(self, body)

        self._httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='sampling-server', daemon=True)
        self._thread.start()

    def _next_action(self, path: str, body: Dict[str, Any]) -> str:
        with self._lock:
            action = self.script[self._count % len(self.script)]
            self._count += 1
            self.requests.append({'path': path, 'body': body, 'action': action})
        return action

    def _answer(self, handler: BaseHTTPRequestHandler, body: Dict[str, Any]) -> None:
        action = self._next_action(handler.path, body)
        if action == 'close':
            handler.close_connection = True
            return  # no status line at all
        if action == 'slow':
            time.sleep(self.slow_seconds)
        status, payload = 200, b''
        if action in ('ok', 'slow'):
            doc = rules_response() if handler.path == '/GetSamplingRules' else targets_response(body)
            payload = json.dumps(doc).encode()
        elif action == 'http500':
            status, payload = 500, b'{"__type":"InternalFailure","message":"boom"}'
        elif action == 'garbage':
            payload = bytes(range(256)) * 4
        elif action == 'truncated':
            payload = json.dumps(rules_response()).encode()[:40]
        elif action == 'wrong_types':
            payload = json.dumps({'SamplingRuleRecords': {'x': 1}, 'SamplingTargetDocuments': 'nope',
                                  'UnprocessedStatistics': 7, 'LastRuleModification': 'soon'}).encode()
        elif action == 'empty':
            payload = b''
        elif action == 'html':
            status, payload = 502, b'<html><body>Bad Gateway</body></html>'
        elif action == 'huge_numbers':
            payload = (b'{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"Default","Priority":1e999,'
                       b'"FixedRate":NaN,"ReservoirSize":1e999,"ServiceType":"*","ResourceARN":"*",'
                       b'"Version":1}}],"SamplingTargetDocuments":[{"RuleName":"Default","FixedRate":Infinity,'
                       b'"ReservoirQuota":1e999,"ReservoirQuotaTTL":-1e999,"Interval":NaN}],'
                       b'"LastRuleModification":1e999}')
        try:
            handler.send_response(status)
            handler.send_header('Content-Type', 'application/json')
            handler.send_header('Content-Length', str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout); that is the point of 'slow'

    @property
    def address(self) -> str:
        return '127.0.0.1:%d' % self.port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
