"""Recorder hot-path benchmark: aws_like_sdk vs aws_xray_sdk vs the raw floor, in one interleaved run.

Workloads (each ends and emits to a loopback UDP receiver that counts what arrives):
  seg10    one segment with 10 capture-decorated subsegments
  seg1000  one segment with 1,000 capture-decorated subsegments (must stream)
  floor    json.dumps of the same 10-subsegment document + one sendto

Run: python benchmarks/core_bench.py [--rounds 7] [--iterations 2000]
aws_xray_sdk is optional (pip install aws-xray-sdk); without it only our figures are printed.
"""
import argparse
import json
import logging
import socket
import statistics
import sys
import threading
import time
import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


class Receiver:
    """Drains a loopback UDP socket on a thread and counts datagrams."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024 * 1024)
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

    def wait_for(self, expected, timeout=10.0):
        deadline = time.time() + timeout
        while self.count < expected and time.time() < deadline:
            time.sleep(0.01)
        return self.count

    def close(self):
        self._stop = True
        self.thread.join()
        self.sock.close()


def build_ours(address):
    from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
    from aws_like_sdk.core.context import Context
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), daemon_address=address, service='bench')
    return recorder


def build_upstream(address):
    try:
        from aws_xray_sdk.core.async_recorder import AsyncAWSXRayRecorder
        from aws_xray_sdk.core.context import Context
    except ImportError:
        return None
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), daemon_address=address, service='bench',
                       plugins=())
    return recorder


def make_workloads(recorder):
    @recorder.capture('work')
    def work():
        return 1

    def seg10():
        with recorder.in_segment('bench'):
            for _ in range(10):
                work()

    def seg1000():
        with recorder.in_segment('bench-big'):
            for _ in range(1000):
                work()

    return seg10, seg1000


def make_floor(address):
    host, port = address.split(':')
    target = (host, int(port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    from aws_like_sdk.core.models.segment import Segment
    from aws_like_sdk.core.models.subsegment import Subsegment
    segment = Segment('bench')
    for _ in range(10):
        sub = Subsegment('work', 'local', segment)
        segment.add_subsegment(sub)
        sub.close()
    segment.close()
    doc = segment.to_dict()
    header = b'{"format":"json","version":1}\n'

    def floor():
        sock.sendto(header + json.dumps(doc).encode('utf-8'), target)

    return floor


def time_per_call(func, iterations):
    start = time.perf_counter()
    for _ in range(iterations):
        func()
    return (time.perf_counter() - start) / iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--iterations', type=int, default=2000)
    parser.add_argument('--big-iterations', type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    from aws_like_sdk.core.emitters import encoding
    receiver = Receiver()
    ours = build_ours(receiver.address)
    upstream = build_upstream(receiver.address)
    ours10, ours1000 = make_workloads(ours)
    floor = make_floor(receiver.address)
    candidates = {'floor (json + sendto)': (floor, 1)}
    fast_encoder = encoding._encode_fast

    def stdlib_mode(func):
        def run():
            encoding._encode_fast = encoding._encode_stdlib
            try:
                func()
            finally:
                encoding._encode_fast = fast_encoder
        return run

    candidates['aws_like_sdk seg10 (stdlib json)'] = (stdlib_mode(ours10), 1)
    if encoding._orjson is not None:
        candidates['aws_like_sdk seg10 (orjson)'] = (ours10, 1)
    if upstream is not None:
        up10, up1000 = make_workloads(upstream)
        candidates['aws_xray_sdk seg10'] = (up10, 1)
    big = {'aws_like_sdk seg1000 (stdlib json)': stdlib_mode(ours1000)}
    if encoding._orjson is not None:
        big['aws_like_sdk seg1000 (orjson)'] = ours1000
    if upstream is not None:
        big['aws_xray_sdk seg1000'] = up1000

    results = {name: [] for name in list(candidates) + list(big)}
    # warm up
    for func, _ in candidates.values():
        time_per_call(func, 200)
    for func in big.values():
        time_per_call(func, 2)
    sent_before = receiver.count
    for _ in range(args.rounds):  # interleaved rounds so machine noise hits every candidate alike
        for name, (func, _) in candidates.items():
            results[name].append(time_per_call(func, args.iterations))
        for name, func in big.items():
            results[name].append(time_per_call(func, args.big_iterations))

    print('%-40s %12s' % ('workload', 'median'))
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, value in medians.items():
        unit = 'ms' if 'seg1000' in name else 'us'
        scale = 1e3 if unit == 'ms' else 1e6
        print('%-40s %9.1f %s' % (name, value * scale, unit))
    if upstream is not None:
        print()
        print('ratio seg10 stdlib json / aws_xray_sdk:   %.2f (target <= 0.50)' % (
            medians['aws_like_sdk seg10 (stdlib json)'] / medians['aws_xray_sdk seg10']))
        if encoding._orjson is not None:
            print('ratio seg10 orjson / aws_xray_sdk:        %.2f (target <= 0.35)' % (
                medians['aws_like_sdk seg10 (orjson)'] / medians['aws_xray_sdk seg10']))
            print('ratio seg1000 orjson / aws_xray_sdk:      %.2f (target <= 0.60)' % (
                medians['aws_like_sdk seg1000 (orjson)'] / medians['aws_xray_sdk seg1000']))
        print('ratio seg1000 stdlib json / aws_xray_sdk: %.2f (target <= 0.60)' % (
            medians['aws_like_sdk seg1000 (stdlib json)'] / medians['aws_xray_sdk seg1000']))
        print('ratio seg10 stdlib json / floor:          %.2f' % (
            medians['aws_like_sdk seg10 (stdlib json)'] / medians['floor (json + sendto)']))

    # Delivery check: our recorder alone, a known number of documents.
    receiver.count = 0
    for _ in range(500):
        ours10()
    for _ in range(3):
        ours1000()
    expected = 500 + 3 * 1001
    arrived = receiver.wait_for(expected)
    print('\ndelivery check: %d of %d documents arrived (streamed pieces counted individually; '
          'seg1000 sends at least one datagram per subsegment batch)' % (arrived, expected))
    receiver.close()


if __name__ == '__main__':
    main()
