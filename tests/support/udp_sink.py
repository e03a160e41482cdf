"""A real UDP receiver on 127.0.0.1 that parses what the SDK emits."""
import json
import socket
import threading
import time
from typing import Any, Dict, List, Optional

HEADER = b'{"format":"json","version":1}'


class UDPSink:
    """Binds a loopback port (ephemeral unless given) and collects datagrams on a background thread."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        self.sock.bind(('127.0.0.1', port))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.address = '127.0.0.1:%d' % self.port
        self.datagrams: List[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='udp-sink', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append(data)

    def __enter__(self) -> 'UDPSink':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def clear(self) -> None:
        with self._lock:
            self.datagrams.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Wait until at least ``count`` documents arrived (bounded by ``timeout``) and return all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.datagrams) >= count:
                    break
            time.sleep(0.005)
        return self.documents()

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Wait until no datagram arrived for ``quiet`` seconds, then return all documents."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            with self._lock:
                n = len(self.datagrams)
            if n == last:
                break
            last = n
            time.sleep(quiet)
        return self.documents()

    def documents(self) -> List[Dict[str, Any]]:
        with self._lock:
            raw = list(self.datagrams)
        docs = []
        for data in raw:
            header, sep, body = data.partition(b'\n')
            assert sep, 'datagram without header delimiter: %r' % data[:100]
            assert header == HEADER, header
            docs.append(json.loads(body))
        return docs


def assemble(documents: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Rebuild whole segment trees from segments and independently streamed subsegments.

    Returns segments by id, each with every streamed piece re-attached under its parent.
    """
    by_id: Dict[str, Dict[str, Any]] = {}

    def index(doc: Dict[str, Any]) -> None:
        by_id[doc['id']] = doc
        for child in doc.get('subsegments', ()):
            index(child)

    for doc in documents:
        index(doc)
    for doc in documents:
        if doc.get('type') == 'subsegment' and doc.get('parent_id') in by_id:
            parent = by_id[doc['parent_id']]
            children = parent.setdefault('subsegments', [])
            if not any(c is doc or c['id'] == doc['id'] for c in children):
                children.append(doc)
    return {d['id']: d for d in documents if d.get('type') != 'subsegment'}


def walk(doc: Dict[str, Any], parent: Optional[Dict[str, Any]] = None):
    """Yield ``(entity, parent)`` for every entity of a tree."""
    yield doc, parent
    for child in doc.get('subsegments', ()):
        yield from walk(child, doc)
