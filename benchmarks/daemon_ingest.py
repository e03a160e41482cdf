"""Benchmark the local daemon: ingestion rate with a separate emitting process, and trace-page render.

Run: ``python benchmarks/daemon_ingest.py [--documents 30000] [--rate 5000]``

1. Ingestion: a daemon process on free loopback ports; a second process sends
   ``--documents`` segment datagrams, paced at ``--rate`` per second (then once more
   unpaced); we report documents stored per second and how many were lost.
2. Render: a trace with 1,000 streamed subsegments; we time the JSON API and, in headless
   Chromium when installed, the waterfall render (the page records its own timings).
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.daemon.conftest import DaemonProcess, chromium_path  # noqa: E402

EMITTER = r'''
import json, os, socket, sys, time
host, port, count, rate, run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
header = b'{"format":"json","version":1}\n'
now = time.time()
datagrams = []
for i in range(count):
    trace = '1-%08x-%s' % (int(now), os.urandom(12).hex())
    doc = {"name": "bench-" + run, "id": os.urandom(8).hex(), "trace_id": trace, "start_time": now,
           "end_time": now + 0.01, "http": {"request": {"method": "GET", "url": "http://h/item/%d" % i},
           "response": {"status": 200}}, "annotations": {"i": i, "run": run},
           "subsegments": [{"name": "query", "id": os.urandom(8).hex(), "start_time": now, "end_time": now + 0.005,
                            "sql": {"sanitized_query": "SELECT * FROM t WHERE id = ?"}}]}
    datagrams.append(header + json.dumps(doc, separators=(",", ":")).encode())
start = time.perf_counter()
print(time.time(), flush=True)
for i, data in enumerate(datagrams):
    if rate > 0:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    sock.sendto(data, (host, port))
print(time.perf_counter() - start)
'''


def ingest(daemon: DaemonProcess, count: int, rate: float, run: str) -> dict:
    before = daemon.counter('stored')
    out = subprocess.run([sys.executable, '-c', EMITTER, daemon.udp[0], str(daemon.udp[1]), str(count), str(rate),
                          run], capture_output=True, text=True, check=True)
    first_sent, send_seconds = (float(x) for x in out.stdout.split())
    sent_at = time.perf_counter()
    deadline = sent_at + 60
    stored = 0
    last_change, last_value = time.perf_counter(), -1
    while time.perf_counter() < deadline:
        stored = daemon.counter('stored') - before
        if stored >= count:
            break
        if stored != last_value:
            last_change, last_value = time.perf_counter(), stored
        elif time.perf_counter() - last_change > 3:
            break  # nothing more is coming: the rest was lost
        time.sleep(0.02)
    elapsed = time.time() - first_sent - (time.perf_counter() - last_change if stored < count else 0)
    return {'run': run, 'sent': count, 'send_seconds': round(send_seconds, 3), 'stored': stored,
            'lost': count - stored, 'stored_per_second': round(stored / elapsed)}


def big_trace(daemon: DaemonProcess, children: int = 1000) -> str:
    now = time.time()
    trace = '1-%08x-%s' % (int(now), os.urandom(12).hex())
    root = os.urandom(8).hex()
    docs = [{'name': 'step-%d' % i, 'id': os.urandom(8).hex(), 'trace_id': trace, 'parent_id': root,
             'type': 'subsegment', 'start_time': now + i * 0.001, 'end_time': now + i * 0.001 + 0.0008,
             'annotations': {'i': i}, 'metadata': {'default': {'payload': 'x' * 40}}} for i in range(children)]
    docs.append({'name': 'big-trace', 'id': root, 'trace_id': trace, 'start_time': now,
                 'end_time': now + children * 0.001 + 0.01})
    for doc in docs:
        daemon.send(doc)
        time.sleep(0.0001)
    daemon.wait_trace(trace, documents=children + 1, timeout=30)
    return trace


def render(daemon: DaemonProcess, trace: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        with opener.open(daemon.base + '/api/traces/' + trace) as response:
            size = len(response.read())
        timings.append(time.perf_counter() - started)
    result = {'api_ms': round(min(timings) * 1000, 1), 'api_bytes': size}
    browser = chromium_path()
    if browser is None:
        result['browser'] = 'chromium not installed'
        return result
    result.update(asyncio.run(_browser_timings(browser, daemon.base + '/traces/' + trace)))
    return result


async def _browser_timings(browser: str, url: str) -> dict:
    """Open ``url`` in headless Chromium over the DevTools protocol; read the page's own timings."""
    import aiohttp
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                             '--disable-background-networking', '--disable-component-update', '--disable-sync',
                             '--user-data-dir=' + profile, '--remote-debugging-port=0', 'about:blank'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, 'DevToolsActivePort')
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.monotonic() > deadline:
                return {'browser': 'no DevTools port'}
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        runs = []
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.put('http://127.0.0.1:%d/json/new?%s' % (port, url)) as response:
                    target = await response.json(content_type=None)
                async with session.ws_connect(target['webSocketDebuggerUrl'], max_msg_size=0) as ws:
                    ident = 0
                    state = {}
                    while time.monotonic() < deadline + 30:
                        ident += 1
                        await ws.send_json({'id': ident, 'method': 'Runtime.evaluate', 'params': {
                            'expression': 'JSON.stringify(document.body ? document.body.dataset : {})',
                            'returnByValue': True}})
                        while True:
                            message = await ws.receive_json()
                            if message.get('id') == ident:
                                break
                        state = json.loads(message['result']['result'].get('value') or '{}')
                        if state.get('rendered'):
                            break
                        await asyncio.sleep(0.02)
                runs.append(state)
                async with session.get('http://127.0.0.1:%d/json/close/%s' % (port, target['id'])):
                    pass
        best = min(runs, key=lambda r: float(r.get('totalMs', 'inf')))
        return {'rows': best.get('rows'), 'fetch_ms': best.get('fetchMs'), 'render_ms': best.get('renderMs'),
                'page_total_ms': best.get('totalMs')}
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--documents', type=int, default=30000)
    parser.add_argument('--rate', type=float, default=5000)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix='aws-like-bench-')
    daemon = DaemonProcess(workdir, ['--max-traces', '200000', '--log-level', 'WARNING'])
    try:
        results = [ingest(daemon, args.documents, args.rate, 'paced'),
                   ingest(daemon, args.documents, 0, 'unpaced')]
        for row in results:
            print(json.dumps(row))
        print(json.dumps(dict(render(daemon, big_trace(daemon)), run='render-1000-subsegments')))
        print(json.dumps({'counters': daemon.stats()['counters']}))
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
