"""Secrets: credentials planted everywhere a request or query carries them never reach a datagram.

Planted: the Authorization and Cookie headers, query strings, user:password in URLs and database
URLs, SQL string literals, AWS secret keys and session tokens. Every web integration and client patch
runs against real loopback servers; every datagram emitted is searched, raw, for every secret.
"""
import asyncio
import contextlib
import importlib
import json
import socket
import sqlite3
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

AUTH = 'AUTHSECRET7f3a9c'
COOKIE = 'COOKIESECRET91be77'
QUERY = 'QUERYSECRET4d2e1a'
URLPASS = 'URLPASSSECRET1234'
DBPASS = 'DBPASSSECRET55aa01'
SQLLIT = 'SQLLITSECRETc0ffee'
AWSKEY = 'AWSSECRETKEYabcdef0123456789'
AWSTOKEN = 'AWSSESSIONTOKENfeedbeef'
SECRETS = (AUTH, COOKIE, QUERY, URLPASS, DBPASS, SQLLIT, AWSKEY, AWSTOKEN)

HEADERS = {'Authorization': 'Bearer ' + AUTH, 'Cookie': 'session=' + COOKIE}
PATH = '/orders?api_key=%s&page=1' % QUERY


def ext_patch_module(name: str):
    # The packages re-export a ``patch`` function that shadows the submodule of the same name.
    return importlib.import_module('aws_like_sdk.ext.%s.patch' % name)


def assert_no_secrets(udp_sink, expect_at_least: int) -> list:
    docs = udp_sink.settle()
    assert len(udp_sink.datagrams) >= expect_at_least, docs
    for data in udp_sink.datagrams:
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, data[:2000])
    return docs


def names(docs) -> set:
    found = set()

    def visit(doc):
        found.add(doc['name'])
        for child in doc.get('subsegments', ()):
            visit(child)
    for doc in docs:
        visit(doc)
    return found


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def wsgi_server(app):
    server = make_server('127.0.0.1', 0, app, server_class=WSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _plain_app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Set-Cookie', 'session=' + COOKIE)])
    return [b'orders']


# -- incoming: WSGI, Flask; outgoing: requests, http.client, httpx ------------------------------------

def test_wsgi_flask_and_http_clients_record_no_secret(xray, udp_sink):
    import flask
    import httpx
    import requests

    from aws_like_sdk.ext.flask.middleware import XRayMiddleware as FlaskMiddleware
    from aws_like_sdk.ext.wsgi.middleware import XRayMiddleware as WSGIMiddleware

    app = flask.Flask('secrets')

    @app.route('/orders')
    def orders():
        return 'flask-orders'

    FlaskMiddleware(app, xray)
    patches = [ext_patch_module(name) for name in ('requests', 'httplib', 'httpx')]
    for module in patches:
        module.patch()
    try:
        with wsgi_server(WSGIMiddleware(_plain_app, xray)) as plain_url, wsgi_server(app) as flask_url:
            bodies = []
            with xray.in_segment('client'):
                for base in (plain_url, flask_url):
                    with_userinfo = base.replace('http://', 'http://scott:%s@' % URLPASS) + PATH
                    bodies.append(requests.get(with_userinfo, headers=HEADERS, timeout=10).text)
                    request = urllib.request.Request(base + PATH, headers=HEADERS)
                    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                    with opener.open(request, timeout=10) as response:
                        bodies.append(response.read().decode())
                    with httpx.Client(trust_env=False) as client:
                        bodies.append(client.get(with_userinfo, headers=HEADERS, timeout=10).text)
    finally:
        for module in patches:
            module.unpatch()
    assert bodies == ['orders'] * 3 + ['flask-orders'] * 3
    docs = assert_no_secrets(udp_sink, expect_at_least=7)
    assert {'client', '127.0.0.1'} <= names(docs)


# -- ASGI on uvicorn ---------------------------------------------------------------------------------

async def _asgi_app(scope, receive, send):
    if scope['type'] != 'http':
        return
    await send({'type': 'http.response.start', 'status': 200,
                'headers': [(b'content-type', b'text/plain'), (b'set-cookie', ('session=' + COOKIE).encode())]})
    await send({'type': 'http.response.body', 'body': b'asgi-orders'})


def test_asgi_on_uvicorn_records_no_secret(xray, udp_sink):
    import uvicorn

    from aws_like_sdk.ext.asgi.middleware import XRayMiddleware

    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    server = uvicorn.Server(uvicorn.Config(XRayMiddleware(_asgi_app, xray), log_level='error', lifespan='off'))
    thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]}, daemon=True)
    thread.start()
    try:
        deadline = 200
        while not server.started and deadline:
            threading.Event().wait(0.05)
            deadline -= 1
        assert server.started
        url = 'http://127.0.0.1:%d%s' % (sock.getsockname()[1], PATH)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(urllib.request.Request(url, headers=HEADERS), timeout=10) as response:
            assert response.read() == b'asgi-orders'
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    docs = assert_no_secrets(udp_sink, expect_at_least=1)
    assert docs[0]['http']['request']['url'].endswith('/orders')


# -- aiohttp server and client -----------------------------------------------------------------------

def test_aiohttp_server_and_client_record_no_secret(xray, udp_sink):
    from aiohttp import ClientSession, web

    from aws_like_sdk.ext.aiohttp.client import aws_xray_trace_config
    from aws_like_sdk.ext.aiohttp.middleware import middleware

    async def orders(request):
        return web.Response(text='aiohttp-orders', headers={'Set-Cookie': 'session=' + COOKIE})

    async def main():
        app = web.Application(middlewares=[middleware])
        app.router.add_get('/orders', orders)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, '127.0.0.1', 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with xray.in_segment_async('aiohttp-client'):
                async with ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
                    base = 'http://127.0.0.1:%d' % port
                    with_userinfo = base.replace('http://', 'http://scott:%s@' % URLPASS) + PATH
                    texts = []
                    # aiohttp refuses an Authorization header together with URL credentials.
                    async with session.get(with_userinfo, headers={'Cookie': HEADERS['Cookie']}) as response:
                        texts.append(await response.text())
                    async with session.get(base + PATH, headers=HEADERS) as response:
                        texts.append(await response.text())
                    return texts
        finally:
            await runner.cleanup()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == ['aiohttp-orders'] * 2
    docs = assert_no_secrets(udp_sink, expect_at_least=3)
    assert 'aiohttp-client' in names(docs)


# -- databases: sqlite3, SQLAlchemy, dbapi2 proxies, a network driver's connect -------------------------

def test_sql_integrations_record_no_literal_and_no_password(xray, udp_sink, tmp_path):
    import sqlalchemy as sa

    from aws_like_sdk.ext import sqlalchemy_core
    from aws_like_sdk.ext.dbapi2 import XRayTracedConn
    psycopg2_patch, sqlite3_patch = ext_patch_module('psycopg2'), ext_patch_module('sqlite3')

    query = "SELECT name FROM users WHERE password = '%s' AND token = '%s'" % (SQLLIT, SQLLIT)
    raw = sqlite3.connect(str(tmp_path / 'a.db'))  # opened unpatched: the dbapi2 proxy alone traces it
    sqlite3_patch.patch()
    sqlalchemy_core.patch()
    psycopg2_patch.patch()
    try:
        import psycopg2
        with xray.in_segment('db-client'):
            conn = sqlite3.connect(str(tmp_path / 'a.db'))
            conn.execute('CREATE TABLE users (name TEXT, password TEXT, token TEXT)')
            conn.execute("INSERT INTO users VALUES ('ann', '%s', '%s')" % (SQLLIT, SQLLIT))
            assert conn.execute(query).fetchall() == [('ann',)]
            conn.commit()
            conn.close()

            engine = sa.create_engine('sqlite:///%s' % (tmp_path / 'a.db'))
            with engine.connect() as sa_conn:
                assert sa_conn.execute(sa.text(query)).fetchall() == [('ann',)]
            engine.dispose()

            proxied = XRayTracedConn(raw, {'url': 'postgresql://scott:%s@db.internal:5432/app' % DBPASS,
                                           'database_type': 'PostgreSQL', 'user': 'scott'})
            assert proxied.cursor().execute(query).fetchall() == [('ann',)]
            raw.close()

            closed_port = socket.socket()
            closed_port.bind(('127.0.0.1', 0))
            port = closed_port.getsockname()[1]
            closed_port.close()
            dsn = 'postgresql://scott:%s@127.0.0.1:%d/app?connect_timeout=2' % (DBPASS, port)
            with pytest.raises(psycopg2.OperationalError):
                psycopg2.connect(dsn)
            with pytest.raises(psycopg2.OperationalError):
                psycopg2.connect(host='127.0.0.1', port=port, user='scott', password=DBPASS, dbname='app',
                                 connect_timeout=2)
    finally:
        psycopg2_patch.unpatch()
        sqlalchemy_core.unpatch()
        sqlite3_patch.unpatch()
    docs = assert_no_secrets(udp_sink, expect_at_least=1)
    sql_blocks = []

    def visit(doc):
        if 'sql' in doc:
            sql_blocks.append(doc['sql'])
        for child in doc.get('subsegments', ()):
            visit(child)
    for doc in docs:
        visit(doc)
    assert len(sql_blocks) >= 7, sql_blocks
    assert any(b.get("url", "").startswith("postgresql://scott@db.internal") for b in sql_blocks), json.dumps(sql_blocks)


# -- botocore: the secret key and session token never show --------------------------------------------

class _FakeDynamo(BaseHTTPRequestHandler):
    wbufsize = 1 << 16

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        body = json.dumps({'TableNames': ['orders']}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/x-amz-json-1.0')
        self.send_header('x-amzn-RequestId', 'req-1')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_botocore_records_no_credentials(xray, udp_sink):
    import botocore.session

    botocore_patch = ext_patch_module('botocore')

    server = ThreadingHTTPServer(('127.0.0.1', 0), _FakeDynamo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    botocore_patch.patch()
    try:
        client = botocore.session.get_session().create_client(
            'dynamodb', region_name='us-east-1', endpoint_url='http://127.0.0.1:%d' % server.server_port,
            aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key=AWSKEY, aws_session_token=AWSTOKEN)
        with xray.in_segment('boto-client'):
            assert client.list_tables()['TableNames'] == ['orders']
    finally:
        botocore_patch.unpatch()
        server.shutdown()
        server.server_close()
        thread.join(5)
    docs = assert_no_secrets(udp_sink, expect_at_least=1)
    assert 'dynamodb' in names(docs)


# -- Django, served by wsgiref in a subprocess (its settings are process-global) ----------------------

DJANGO_SERVER = '''
import sys
import django
from django.conf import settings

settings.configure(
    DEBUG=False, ALLOWED_HOSTS=['127.0.0.1'], ROOT_URLCONF=__name__, SECRET_KEY='not-a-planted-secret',
    INSTALLED_APPS=['aws_like_sdk.ext.django'], MIDDLEWARE=['aws_like_sdk.ext.django.middleware.XRayMiddleware'],
    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': sys.argv[2]}},
    XRAY_RECORDER={'AWS_XRAY_DAEMON_ADDRESS': sys.argv[1], 'SAMPLING': False,
                   'AWS_XRAY_TRACING_NAME': 'django-secrets'})
django.setup()

from django.db import connection
from django.http import HttpResponse
from django.urls import path
from wsgiref.simple_server import WSGIRequestHandler, make_server
from django.core.wsgi import get_wsgi_application


def orders(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'SQLLIT' AS secret".replace('SQLLIT', sys.argv[3]))
        cursor.fetchall()
    response = HttpResponse('django-orders')
    response.set_cookie('session', sys.argv[4])
    return response


urlpatterns = [path('orders', orders)]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server('127.0.0.1', 0, get_wsgi_application(), handler_class=Quiet)
server.timeout = 30
print(server.server_port, flush=True)
for _ in range(2):
    server.handle_request()
'''


def test_django_records_no_secret(udp_sink, tmp_path):
    import os
    import subprocess
    import sys

    from .conftest import ROOT
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('AWS_XRAY_DAEMON_ADDRESS', None)
    env.pop('DJANGO_SETTINGS_MODULE', None)
    proc = subprocess.Popen([sys.executable, '-c', DJANGO_SERVER, udp_sink.address, str(tmp_path / 'django.db'),
                             SQLLIT, COOKIE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        port = int(proc.stdout.readline() or 0)
        assert port, proc.stderr.read()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        bodies = []
        for _ in range(2):
            request = urllib.request.Request('http://127.0.0.1:%d%s' % (port, PATH), headers=HEADERS)
            with opener.open(request, timeout=30) as response:
                bodies.append(response.read())
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
    assert bodies == [b'django-orders'] * 2
    docs = assert_no_secrets(udp_sink, expect_at_least=2)
    assert 'django-secrets' in names(docs)
    sql = [child.get('sql') for doc in docs for child in doc.get('subsegments', ()) if child.get('sql')]
    assert sql and all('?' in block.get('sanitized_query', '?') for block in sql), sql
