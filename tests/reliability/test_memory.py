"""Memory: a long-lived segment streaming subsegments out stays bounded (tracemalloc).

CI streams 50,000 subsegments; AWS_LIKE_SDK_FULL_RELIABILITY=1 streams 1,000,000. The bound is the
same in both: growth after warm-up must not depend on how many subsegments went through.
"""
import gc
import socket
import threading
import tracemalloc

import pytest

from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context

from .conftest import LONG_TIMEOUT, scaled

SUBSEGMENTS = scaled(50000, 1000000)
WARMUP = 10000
GROWTH_BOUND = 1024 * 1024  # bytes over the warm-up baseline, whatever SUBSEGMENTS is


class DrainingReceiver:
    """A loopback UDP socket drained into one reused buffer: counts datagrams, keeps nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.settimeout(0.05)
        self.address = '127.0.0.1:%d' % self.sock.getsockname()[1]
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='draining-receiver', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(70000)
        while not self._stop.is_set():
            try:
                self.sock.recv_into(buf)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def draining_receiver():
    receiver = DrainingReceiver()
    yield receiver
    receiver.close()


@pytest.mark.timeout(LONG_TIMEOUT)
def test_long_lived_segment_streaming_subsegments_keeps_memory_bounded(draining_receiver, record_property):
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), service='long-lived',
                       daemon_address=draining_receiver.address)
    tracemalloc.start()
    try:
        segment = recorder.begin_segment('long-lived')
        baseline = None
        for i in range(SUBSEGMENTS):
            recorder.begin_subsegment('job-%d' % i)  # unique names: name caches must stay bounded too
            recorder.put_annotation('i', i)
            with recorder.in_subsegment('step'):
                pass
            recorder.end_subsegment()
            if i + 1 == WARMUP:
                gc.collect()
                baseline = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    open_children = len(segment.subsegments)
    recorder.end_segment()
    growth, peak_growth = current - baseline, peak - baseline
    record_property('subsegments', SUBSEGMENTS)
    record_property('baseline_bytes', baseline)
    record_property('growth_bytes', growth)
    record_property('peak_over_baseline_bytes', peak_growth)
    print('streamed=%d baseline=%d growth=%d peak_over_baseline=%d sent=%d'
          % (SUBSEGMENTS, baseline, growth, peak_growth, recorder.emitter.sent))
    assert growth < GROWTH_BOUND, growth
    assert peak_growth < 2 * GROWTH_BOUND, peak_growth
    # Everything but the last few subtrees went out on its own.
    assert open_children <= recorder.streaming_threshold + 1
    assert recorder.emitter.dropped == 0
    assert recorder.emitter.sent >= SUBSEGMENTS - recorder.streaming_threshold
