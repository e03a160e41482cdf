"""Recorder hot-path benchmark: aws_like_sdk vs aws_xray_sdk vs the raw floor, in one interleaved run.

Workloads, each ending and emitting to a loopback UDP receiver that runs in a separate process
(an in-process receiver thread would compete for the GIL and blur the comparison):

  seg10    one segment with 10 capture-decorated subsegments
  seg1000  one segment with 1,000 capture-decorated subsegments (must stream)
  floor    json.dumps of the same 10-subsegment document + one sendto

Each timed round ends with ``emitter.flush()``, so work that aws_like_sdk's background sender does
after the call returns is inside the measurement, and every round checks that all documents the
emitter sent reached the receiver.

Run: python benchmarks/core_bench.py [--rounds 7] [--iterations 2000]
aws_xray_sdk is optional (pip install aws-xray-sdk); without it only our figures are printed.
"""
import argparse
import json
import logging
import multiprocessing
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


def _receive(port_pipe, count_pipe) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024 * 1024)
    sock.bind(('127.0.0.1', 0))
    sock.settimeout(0.05)
    port_pipe.send(sock.getsockname()[1])
    count = 0
    while True:
        try:
            sock.recv(70000)
            count += 1
        except socket.timeout:
            if count_pipe.poll():
                if count_pipe.recv() == 'stop':
                    return
                count_pipe.send(count)


class Receiver:
    """A UDP receiver in a child process; ``count()`` asks how many datagrams it has read."""

    def __init__(self) -> None:
        port_parent, port_child = multiprocessing.Pipe()
        self._control, control_child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_receive, args=(port_child, control_child), daemon=True)
        self.process.start()
        self.address = '127.0.0.1:%d' % port_parent.recv()

    def count(self) -> int:
        time.sleep(0.1)
        self._control.send('count')
        return self._control.recv()

    def wait_for(self, expected: int, timeout: float = 10.0) -> int:
        deadline = time.time() + timeout
        seen = self.count()
        while seen < expected and time.time() < deadline:
            seen = self.count()
        return seen

    def close(self) -> None:
        self._control.send('stop')
        self.process.join(5)


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
    recorder.configure(sampling=False, context=Context(), daemon_address=address, service='bench', plugins=())
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


def timed(func, iterations, flush=None):
    start = time.perf_counter()
    for _ in range(iterations):
        func()
    if flush is not None:
        flush()
    return (time.perf_counter() - start) / iterations


def main() -> None:
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
    flush = ours.emitter.flush if hasattr(ours.emitter, 'flush') else None
    fast_encoder = encoding._encode_fast

    def with_encoder(func, encoder):
        def run():
            encoding._encode_fast = encoder
            try:
                func()
            finally:
                encoding._encode_fast = fast_encoder
        return run

    small = {'floor (json + sendto)': (make_floor(receiver.address), None)}
    small['aws_like_sdk seg10 (stdlib json)'] = (with_encoder(ours10, encoding._encode_stdlib), flush)
    big = {'aws_like_sdk seg1000 (stdlib json)': (with_encoder(ours1000, encoding._encode_stdlib), flush)}
    if encoding._orjson is not None:
        small['aws_like_sdk seg10 (orjson)'] = (ours10, flush)
        big['aws_like_sdk seg1000 (orjson)'] = (ours1000, flush)
    if upstream is not None:
        up10, up1000 = make_workloads(upstream)
        small['aws_xray_sdk seg10'] = (up10, None)
        big['aws_xray_sdk seg1000'] = (up1000, None)

    for func, fl in small.values():
        timed(func, 200, fl)
    for func, fl in big.values():
        timed(func, 2, fl)
    results = {name: [] for name in list(small) + list(big)}
    for _ in range(args.rounds):  # interleaved so machine noise hits every candidate alike
        for name, (func, fl) in small.items():
            results[name].append(timed(func, args.iterations, fl))
        for name, (func, fl) in big.items():
            results[name].append(timed(func, args.big_iterations, fl))

    medians = {name: statistics.median(values) for name, values in results.items()}
    print('%-40s %12s' % ('workload', 'median'))
    for name, value in medians.items():
        if 'seg1000' in name:
            print('%-40s %9.2f ms' % (name, value * 1e3))
        else:
            print('%-40s %9.1f us' % (name, value * 1e6))
    if upstream is not None:
        def ratio(ours_name, target_name):
            return medians[ours_name] / medians[target_name]
        print()
        print('seg10 stdlib json / aws_xray_sdk    %.2f  (target <= 0.50)' % ratio(
            'aws_like_sdk seg10 (stdlib json)', 'aws_xray_sdk seg10'))
        if encoding._orjson is not None:
            print('seg10 orjson / aws_xray_sdk         %.2f  (target <= 0.35)' % ratio(
                'aws_like_sdk seg10 (orjson)', 'aws_xray_sdk seg10'))
            print('seg1000 orjson / aws_xray_sdk       %.2f  (target <= 0.60)' % ratio(
                'aws_like_sdk seg1000 (orjson)', 'aws_xray_sdk seg1000'))
        print('seg1000 stdlib json / aws_xray_sdk  %.2f  (target <= 0.60)' % ratio(
            'aws_like_sdk seg1000 (stdlib json)', 'aws_xray_sdk seg1000'))
        print('seg10 stdlib json / floor           %.2f' % ratio(
            'aws_like_sdk seg10 (stdlib json)', 'floor (json + sendto)'))

    # Delivery: everything our emitter sent in a fresh batch must reach the receiver.
    before = receiver.count()
    sent_before = ours.emitter.sent
    for _ in range(500):
        ours10()
    for _ in range(3):
        ours1000()
    if flush is not None:
        flush()
    sent = ours.emitter.sent - sent_before
    arrived = receiver.wait_for(before + sent) - before
    print('\ndelivery: %d of %d datagrams sent by aws_like_sdk arrived; dropped by the emitter: %d'
          % (arrived, sent, ours.emitter.dropped))
    receiver.close()


if __name__ == '__main__':
    main()
