"""The instrumented sample app: a shop front end calling an inventory service, over stdlib HTTP.

It shows what a first trace should: a request segment with annotations and HTTP data,
nested captured functions, SQLite queries (through the sqlite3 patch), a traced call
to a second service that continues the trace, and a request that fails.
"""
import http.server
import json
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Optional, Tuple

from aws_like_sdk.core import xray_recorder
from aws_like_sdk.core.models.trace_header import TraceHeader
from aws_like_sdk.ext.util import inject_trace_header

FRONTEND = 'shop-frontend'
INVENTORY = 'inventory-service'
PRODUCTS = [('p-1', 'Espresso beans', 12.5), ('p-2', 'Grinder', 89.0), ('p-3', 'Milk jug', 15.0),
            ('p-4', 'Scale', 34.9), ('p-5', 'Tamper', 22.0)]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _database() -> sqlite3.Connection:
    conn = sqlite3.connect(':memory:', check_same_thread=False)
    conn.execute('CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT, price REAL)')
    conn.execute('CREATE TABLE stock (product_id TEXT, quantity INTEGER)')
    conn.executemany('INSERT INTO products VALUES (?, ?, ?)', PRODUCTS)
    conn.executemany('INSERT INTO stock VALUES (?, ?)', [(p[0], random.randint(0, 40)) for p in PRODUCTS])
    conn.commit()
    return conn


class _Service(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, route: Callable[['_Handler', Any], Tuple[int, Any]]) -> None:
        super().__init__(('127.0.0.1', 0), _Handler)
        self.name = name
        self.route = route
        self.db = _database()
        self.db_lock = threading.Lock()
        self.peer: Optional[str] = None

    @property
    def url(self) -> str:
        return 'http://127.0.0.1:%d' % self.server_address[1]

    def start(self) -> '_Service':
        threading.Thread(target=self.serve_forever, name=self.name, daemon=True).start()
        return self


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Service

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet demo
        pass

    def do_GET(self) -> None:  # noqa: N802
        # What a framework middleware does: continue the caller's trace, record the request.
        header = TraceHeader.from_header_str(self.headers.get('X-Amzn-Trace-Id'))
        with xray_recorder.in_segment(self.server.name, traceid=header.root, parent_id=header.parent,
                                      sampling=1) as segment:
            segment.put_http_meta('method', 'GET')
            segment.put_http_meta('url', 'http://%s%s' % (self.headers.get('Host', 'localhost'), self.path))
            segment.put_http_meta('user_agent', self.headers.get('User-Agent', ''))
            segment.put_http_meta('client_ip', self.client_address[0])
            try:
                status, body = self.server.route(self, segment)
            except Exception as exc:
                segment.add_exception(exc, _stack())
                status, body = 500, {'error': type(exc).__name__}
            segment.put_http_meta('status', status)
            if status >= 500:
                segment.add_fault_flag()
            elif status >= 400:
                segment.add_error_flag()
            payload = json.dumps(body).encode()
            segment.put_http_meta('content_length', len(payload))
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(payload)))
            self.send_header('X-Amzn-Trace-Id', 'Root=%s' % segment.trace_id)
            self.end_headers()
            self.wfile.write(payload)


def _stack() -> list:
    import traceback
    return traceback.extract_stack()


# -- the inventory service ----------------------------------------------------------------

def _inventory_route(handler: _Handler, segment: Any) -> Tuple[int, Any]:
    product_id = handler.path.rstrip('/').rsplit('/', 1)[-1]
    segment.put_annotation('product_id', product_id)
    with handler.server.db_lock:
        row = handler.server.db.execute('SELECT quantity FROM stock WHERE product_id = ?', (product_id,)).fetchone()
    time.sleep(random.uniform(0.002, 0.01))
    return (200, {'product_id': product_id, 'quantity': row[0]}) if row else (404, {'error': 'unknown product'})


# -- the front end ----------------------------------------------------------------------------

@xray_recorder.capture('load_product')
def load_product(server: _Service, product_id: str) -> Optional[tuple]:
    with server.db_lock:
        return server.db.execute('SELECT id, name, price FROM products WHERE id = ?', (product_id,)).fetchone()


@xray_recorder.capture('price_with_tax')
def price_with_tax(price: float) -> float:
    with xray_recorder.in_subsegment('tax_rules') as sub:
        rate = 0.2
        if sub is not None:
            sub.put_metadata('rate', rate, 'pricing')
        time.sleep(random.uniform(0.001, 0.004))
    return round(price * (1 + rate), 2)


def check_stock(server: _Service, product_id: str) -> int:
    """A traced call to the second service: the trace header makes its segment join this trace."""
    url = '%s/stock/%s' % (server.peer, product_id)
    with xray_recorder.in_subsegment(INVENTORY) as sub:
        headers = {}
        if sub is not None:
            sub.namespace = 'remote'
            sub.put_http_meta('method', 'GET')
            sub.put_http_meta('url', url)
            inject_trace_header(headers, sub)
        try:
            with _NO_PROXY.open(urllib.request.Request(url, headers=headers), timeout=5) as response:
                status, data = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            status, data = exc.code, {}
        if sub is not None:
            sub.put_http_meta('status', status)
        return data.get('quantity', 0)


@xray_recorder.capture('build_product_page')
def build_product_page(server: _Service, product_id: str) -> dict:
    row = load_product(server, product_id)
    if row is None:
        # The one failing request: an unhandled error in the app becomes a 500 with its exception.
        raise LookupError('product %s vanished from the catalogue' % product_id)
    return {'id': row[0], 'name': row[1], 'price': price_with_tax(row[2]), 'in_stock': check_stock(server, row[0])}


def _frontend_route(handler: _Handler, segment: Any) -> Tuple[int, Any]:
    path = handler.path
    segment.put_annotation('route', path.split('/')[1] or 'home')
    if path.startswith('/products/'):
        product_id = path.rsplit('/', 1)[-1]
        segment.put_annotation('product_id', product_id)
        return 200, build_product_page(handler.server, product_id)
    if path == '/products':
        with xray_recorder.in_subsegment('list_products'):
            with handler.server.db_lock:
                rows = handler.server.db.execute('SELECT id, name FROM products ORDER BY name').fetchall()
        return 200, [{'id': r[0], 'name': r[1]} for r in rows]
    if path == '/health':
        return 200, {'ok': True}
    return 404, {'error': 'not found'}


class DemoApp:
    """Both services, started on free loopback ports."""

    def __init__(self) -> None:
        self.inventory = _Service(INVENTORY, _inventory_route).start()
        self.frontend = _Service(FRONTEND, _frontend_route)
        self.frontend.peer = self.inventory.url
        self.frontend.start()

    def plan(self, count: int) -> list:
        """The request paths the demo sends: mostly product pages, exactly one failing request."""
        paths = ['/products', '/health'] + ['/products/%s' % PRODUCTS[i % len(PRODUCTS)][0]
                                             for i in range(max(count - 3, 0))]
        paths = paths[:max(count - 1, 0)]
        paths.insert(len(paths) // 2, '/products/p-404')
        return paths

    def get(self, path: str) -> int:
        """One request to the front end (untraced client side); returns the status."""
        try:
            with _NO_PROXY.open(self.frontend.url + path, timeout=10) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        for service in (self.frontend, self.inventory):
            service.shutdown()
            service.server_close()
