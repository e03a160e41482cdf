"""Fixtures and sizes for the reliability scenarios (see docs/reliability.rst).

CI runs every scenario at a bounded size; ``AWS_LIKE_SDK_FULL_RELIABILITY=1`` runs the full sizes and
a longer fuzzing campaign (``AWS_LIKE_SDK_FUZZ_EXAMPLES`` overrides the example count either way).
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, settings

FULL = os.environ.get('AWS_LIKE_SDK_FULL_RELIABILITY', '').lower() in ('1', 'true', 'yes')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = b'{"format":"json","version":1}'


#: pytest-timeout for scenarios whose duration grows with the full sizes or a long fuzzing campaign.
LONG_TIMEOUT = 3600 if FULL or os.environ.get('AWS_LIKE_SDK_FUZZ_EXAMPLES') else 120


def scaled(ci: int, full: int) -> int:
    """The size of a scenario: ``ci`` in CI, ``full`` with AWS_LIKE_SDK_FULL_RELIABILITY=1."""
    return full if FULL else ci


def _fuzz_examples(ci: int, full: int) -> int:
    override = os.environ.get('AWS_LIKE_SDK_FUZZ_EXAMPLES')
    return int(override) if override else scaled(ci, full)


def fuzz(ci: int = 150, full: int = 5000) -> settings:
    """Hypothesis settings for one property: bounded in CI, long in the full run.

    No deadline: CI machines are shared and slow examples are not failures here; the database is
    off so runs do not depend on (or write) local state.
    """
    return settings(max_examples=_fuzz_examples(ci, full), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def parse_datagram(data: bytes) -> Dict[str, Any]:
    """Split a datagram as the daemon does and parse the body strictly (no NaN, valid UTF-8)."""
    header, sep, body = data.partition(b'\n')
    assert sep, 'datagram without header delimiter: %r' % data[:100]
    assert header == HEADER, header

    def reject(constant: str) -> None:
        raise ValueError('non-JSON constant %s' % constant)

    return json.loads(body.decode('utf-8'), parse_constant=reject)


class RemoteReceiver:
    """A UDP receiver in a child process (see receiver_proc.py): it cannot be slowed by our GIL."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix='aws-like-receiver-')
        self._out = os.path.join(self._dir, 'datagrams.bin')
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'reliability', 'receiver_proc.py'),
                                      self._out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('receiver did not start: %s' % self.proc.stderr.read())
        self.port = int(line)
        self.address = '127.0.0.1:%d' % self.port
        self.kernel_drops: Optional[int] = None

    def drained(self, timeout: float = 60.0) -> int:
        """Wait until the receiver has read everything sent so far; return its count.

        A datagram is queued behind every earlier one, so its answer proves the queue was drained.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(b'PING', ('127.0.0.1', self.port))
            return int(sock.recv(64))

    def collect(self, timeout: float = 60.0) -> List[bytes]:
        """Stop the receiver and return every datagram it got, in arrival order."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b'STOP', ('127.0.0.1', self.port))
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        with open(self._out, 'rb') as handle:
            data = handle.read()
        self.kernel_drops = struct.unpack('>q', data[:8])[0]
        datagrams, pos = [], 8
        while pos < len(data):
            (size,) = struct.unpack('>I', data[pos:pos + 4])
            datagrams.append(data[pos + 4:pos + 4 + size])
            pos += 4 + size
        return datagrams

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def remote_receiver():
    receiver = RemoteReceiver()
    yield receiver
    receiver.close()


def free_udp_port() -> int:
    """A port that was free a moment ago (for a daemon started later on a fixed address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; AssertionError after ``timeout`` (never a timed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('condition not met within %.1f s' % timeout)
        time.sleep(interval)
