"""Per-call cost of tracing outgoing HTTP calls: aws_like_sdk vs aws_xray_sdk, same loopback server.

Each configuration runs in its own subprocess (both SDKs patch the same libraries), against a keep-alive
HTTP server on 127.0.0.1; documents go to a UDP port nobody reads. Usage::

    python benchmarks/http_clients_bench.py [--calls 2000]
"""
import argparse
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHILD = r'''
import json, sys, time
sdk, client, url, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if sdk != 'none':
    core = __import__(sdk + '.core', fromlist=['xray_recorder'])
    rec = core.xray_recorder
    rec.configure(sampling=False, daemon_address='127.0.0.1:9', context_missing='IGNORE_ERROR')
    core.patch(['requests' if client == 'requests' else 'httplib'])
import http.client, requests
from urllib.parse import urlsplit
parts = urlsplit(url)
if client == 'requests':
    session = requests.Session()
    call = lambda: session.get(url).content
else:
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    def call():
        conn.request('GET', '/'); conn.getresponse().read()
def run():
    for _ in range(calls):
        call()
for _ in range(50):
    call()
if sdk != 'none':
    rec.begin_segment('bench')
start = time.perf_counter()
run()
elapsed = time.perf_counter() - start
print(json.dumps({'us_per_call': elapsed / calls * 1e6}))
'''


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Without these, headers and body leave in separate segments and delayed ACKs add ~40 ms per call.
    disable_nagle_algorithm = True
    wbufsize = 65536

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--calls', type=int, default=2000)
    args = parser.parse_args()
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = 'http://127.0.0.1:%d/' % server.server_address[1]
    print('%-10s %-14s %12s %12s' % ('client', 'sdk', 'us/call', 'overhead'))
    for client in ('requests', 'httplib'):
        baseline = None
        for sdk in ('none', 'aws_like_sdk', 'aws_xray_sdk'):
            out = subprocess.run([sys.executable, '-c', CHILD, sdk, client, url, str(args.calls)],
                                 capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                print('%-10s %-14s failed: %s' % (client, sdk, out.stderr.strip().splitlines()[-1:]))
                continue
            us = json.loads(out.stdout.strip().splitlines()[-1])['us_per_call']
            baseline = us if sdk == 'none' else baseline
            overhead = '' if sdk == 'none' or baseline is None else '%+.1f' % (us - baseline)
            print('%-10s %-14s %12.1f %12s' % (client, sdk, us, overhead))
    server.shutdown()
    time.sleep(0.05)


if __name__ == '__main__':
    main()
