"""Async recorder benchmark: aws_like_sdk vs aws_xray_sdk's AsyncAWSXRayRecorder + AsyncContext.

Workload (per iteration, inside a running event loop): one segment (``in_segment_async``) holding
10 ``capture_async`` subsegments awaited one after another and 10 more run with ``asyncio.gather``,
then the segment is emitted to a loopback UDP receiver (a child process) that counts the datagrams. Both SDKs run in
the same process, rounds interleaved; the figure is the median time per iteration over the rounds.

Also reported: the same workload with no tracing at all (the asyncio floor: creating 10 tasks for
gather costs the same whoever traces them), so the tracing overhead itself can be compared.

Run: python benchmarks/async_bench.py [--rounds 7] [--iterations 1000]
aws_xray_sdk is optional (pip install aws-xray-sdk); without it only our figures are printed.
"""
import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

SEQUENTIAL = 10
GATHERED = 10


# The receiver runs in its own process: a receiving thread in this process would compete for the
# GIL with every sendto and blur the comparison.
_RECEIVER_SOURCE = r"""
import selectors, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024 * 1024)
sock.bind(('127.0.0.1', 0))
sock.setblocking(False)
print(sock.getsockname()[1], flush=True)
sel = selectors.DefaultSelector()
sel.register(sock, selectors.EVENT_READ, 'udp')
sel.register(sys.stdin, selectors.EVENT_READ, 'cmd')
count = 0
while True:
    for key, _ in sel.select(timeout=30):
        if key.data == 'udp':
            while True:
                try:
                    sock.recv(70000)
                except BlockingIOError:
                    break
                count += 1
        else:
            line = sys.stdin.readline()
            if not line or line.strip() == 'stop':
                sys.exit(0)
            print(count, flush=True)
"""


class Receiver:
    """Counts datagrams arriving on a loopback UDP port, in a child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, '-c', _RECEIVER_SOURCE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.address = '127.0.0.1:%d' % int(self.proc.stdout.readline())

    def count(self) -> int:
        self.proc.stdin.write('count\n')
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait_for(self, expected: int, timeout: float = 10.0) -> int:
        deadline = time.time() + timeout
        count = self.count()
        while count < expected and time.time() < deadline:
            time.sleep(0.05)
            count = self.count()
        return count

    def close(self) -> None:
        self.proc.stdin.write('stop\n')
        self.proc.stdin.flush()
        self.proc.wait(5)


def make_workload(recorder):
    """Return ``async workload()`` for ``recorder`` (None: the untraced asyncio floor)."""
    if recorder is None:
        async def leaf(i):
            return i

        async def untraced():
            for i in range(SEQUENTIAL):
                await leaf(i)
            await asyncio.gather(*(leaf(i) for i in range(GATHERED)))
        return untraced

    @recorder.capture_async('leaf')
    async def traced_leaf(i):
        return i

    async def traced():
        async with recorder.in_segment_async('bench'):
            for i in range(SEQUENTIAL):
                await traced_leaf(i)
            await asyncio.gather(*(traced_leaf(i) for i in range(GATHERED)))
    return traced


class Side:
    """One contender: its own event loop, recorder and workload."""

    def __init__(self, name: str, build) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # upstream's AsyncContext binds to the current loop
        self.recorder = build(self.loop)
        self.workload = make_workload(self.recorder)
        self.samples = []

    def run(self, iterations: int) -> float:
        async def batch():
            start = time.perf_counter()
            for _ in range(iterations):
                await self.workload()
            return (time.perf_counter() - start) / iterations
        asyncio.set_event_loop(self.loop)
        per_call = self.loop.run_until_complete(batch())
        self.samples.append(per_call)
        return per_call

    def close(self) -> None:
        self.loop.close()


def build_ours(address):
    def build(loop):
        from aws_like_sdk.core.async_context import AsyncContext
        from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
        recorder = AsyncAWSXRayRecorder()
        recorder.configure(sampling=False, context=AsyncContext(loop=loop), daemon_address=address,
                           service='bench')
        return recorder
    return build


def build_upstream(address):
    try:
        from aws_xray_sdk.core.async_context import AsyncContext
        from aws_xray_sdk.core.async_recorder import AsyncAWSXRayRecorder
    except ImportError:
        return None

    def build(loop):
        recorder = AsyncAWSXRayRecorder()
        recorder.configure(sampling=False, context=AsyncContext(loop=loop), daemon_address=address,
                           service='bench', plugins=())
        return recorder
    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--iterations', type=int, default=1000)
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter('ignore', DeprecationWarning)  # upstream calls asyncio.get_event_loop()

    receiver = Receiver()
    sides = [Side('aws_like_sdk', build_ours(receiver.address))]
    upstream = build_upstream(receiver.address)
    if upstream is not None:
        sides.append(Side('aws_xray_sdk', upstream))
    floor = Side('untraced floor', lambda loop: None)
    traced_sides = list(sides)
    sides.append(floor)

    for side in sides:  # warm-up: imports, sockets, caches
        side.run(max(1, options.iterations // 10))
        side.samples.clear()
    sent_before = receiver.wait_for(0, 0)
    for _ in range(options.rounds):
        for side in sides:
            side.run(options.iterations)
    expected = sent_before + len(traced_sides) * options.rounds * options.iterations
    received = receiver.wait_for(expected, timeout=10)

    print('async workload: 1 segment, %d sequential + %d gathered capture_async subsegments'
          % (SEQUENTIAL, GATHERED))
    print('%d rounds x %d iterations; datagrams received %d of %d (after warm-up)'
          % (options.rounds, options.iterations, received - sent_before, expected - sent_before))
    medians = {side.name: statistics.median(side.samples) for side in sides}
    floor_us = medians['untraced floor'] * 1e6
    for side in sides:
        us = medians[side.name] * 1e6
        overhead = us - floor_us if side is not floor else 0.0
        print('  %-15s %8.1f us/iteration   tracing overhead %8.1f us' % (side.name, us, overhead))
    if 'aws_xray_sdk' in medians:
        ours, theirs = medians['aws_like_sdk'] * 1e6, medians['aws_xray_sdk'] * 1e6
        print('  ratio aws_like_sdk / aws_xray_sdk: %.2fx total, %.2fx tracing overhead (target <= 0.5x)'
              % (ours / theirs, (ours - floor_us) / (theirs - floor_us)))
    for side in sides:
        side.close()
    receiver.close()


if __name__ == '__main__':
    main()
