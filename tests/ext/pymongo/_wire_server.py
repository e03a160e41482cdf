"""A tiny MongoDB server on loopback that speaks the real wire protocol, for pymongo's tests.

No MongoDB server can be installed here, so this answers just enough for ``MongoClient(...,
directConnection=True)``: the legacy ``isMaster`` handshake over OP_QUERY, then OP_MSG commands
``hello``/``isMaster``, ``ping``, ``insert``, ``find`` (one batch, equality filters), ``endSessions``
and ``killCursors``. Every other command gets MongoDB's ``CommandNotFound`` error reply; ``fail``
(``{'fail': 1, 'code': n, 'codeName': ...}``) answers with the error it is given, and ``hangup``
closes the connection without an answer.

Each connection is served by a daemon thread that polls a stop flag, so :meth:`WireServer.stop`
returns within about half a second whatever the clients do.
"""
import datetime
import logging
import socket
import socketserver
import struct
import threading
from typing import Any, Dict, List, Optional, Tuple

import bson

log = logging.getLogger(__name__)

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
_HEADER = struct.Struct('<iiii')
_CHECKSUM_PRESENT = 1
_MORE_TO_COME = 2
_POLL = 0.2
_HANGUP: Any = object()  # _op_msg's answer to 'hangup'


class _Closed(Exception):
    pass


class WireServer:
    """Serve on ``127.0.0.1:<free port>``; use as a context manager or call start/stop."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.collections: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
        self.commands: List[Dict[str, Any]] = []  # every command received, with its '$db'
        self._next_request_id = 0
        self._next_connection_id = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            block_on_close = False

        self._server = Server(('127.0.0.1', 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': _POLL},
                                        name='mongo-wire-server', daemon=True)

    @property
    def address(self) -> Tuple[str, int]:
        return self._server.server_address[:2]

    @property
    def uri(self) -> str:
        host, port = self.address
        return 'mongodb://%s:%d/?directConnection=true' % (host, port)

    def start(self) -> 'WireServer':
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> 'WireServer':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- connection loop -------------------------------------------------------------------------------
    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(_POLL)
        with self._lock:
            self._next_connection_id += 1
            connection_id = self._next_connection_id
        try:
            while not self._stop.is_set():
                try:
                    header = self._read(sock, _HEADER.size)
                except socket.timeout:
                    continue
                length, request_id, _, op_code = _HEADER.unpack(header)
                body = self._read(sock, length - _HEADER.size)
                if op_code == OP_QUERY:
                    sock.sendall(self._op_query(body, request_id, connection_id))
                elif op_code == OP_MSG:
                    reply = self._op_msg(body, request_id, connection_id)
                    if reply is _HANGUP:
                        return
                    if reply is not None:
                        sock.sendall(reply)
                else:
                    log.warning('wire server: unsupported opcode %d; closing', op_code)
                    return
        except (_Closed, ConnectionError, OSError):
            return

    def _read(self, sock: socket.socket, size: int) -> bytes:
        chunks = []
        while size:
            try:
                chunk = sock.recv(size)
            except socket.timeout:
                if chunks:  # mid-message: keep waiting unless stopping
                    if self._stop.is_set():
                        raise _Closed()
                    continue
                raise
            if not chunk:
                raise _Closed()
            chunks.append(chunk)
            size -= len(chunk)
        return b''.join(chunks)

    def _header(self, length: int, response_to: int, op_code: int) -> bytes:
        with self._lock:
            self._next_request_id += 1
            request_id = self._next_request_id
        return _HEADER.pack(length + _HEADER.size, request_id, response_to, op_code)

    # -- OP_QUERY (legacy handshake only) ---------------------------------------------------------------
    def _op_query(self, body: bytes, request_id: int, connection_id: int) -> bytes:
        end = body.index(b'\x00', 4)
        collection = body[4:end].decode()
        query_start = end + 1 + 8
        size = struct.unpack_from('<i', body, query_start)[0]
        query = bson.decode(body[query_start:query_start + size])
        command = dict(query.get('$query', query))
        command['$db'] = collection.partition('.')[0]
        reply = bson.encode(self._dispatch(command, connection_id))
        payload = struct.pack('<iqii', 0, 0, 0, 1) + reply
        return self._header(len(payload), request_id, OP_REPLY) + payload

    # -- OP_MSG ----------------------------------------------------------------------------------------
    def _op_msg(self, body: bytes, request_id: int, connection_id: int) -> Any:
        flags = struct.unpack_from('<I', body)[0]
        end = len(body) - (4 if flags & _CHECKSUM_PRESENT else 0)
        offset = 4
        command: Dict[str, Any] = {}
        while offset < end:
            kind = body[offset]
            offset += 1
            size = struct.unpack_from('<i', body, offset)[0]
            if kind == 0:
                command.update(bson.decode(body[offset:offset + size]))
            else:  # kind 1: a document sequence, e.g. insert's 'documents'
                section_end = offset + size
                name_end = body.index(b'\x00', offset + 4)
                name = body[offset + 4:name_end].decode()
                command[name] = list(bson.decode_all(body[name_end + 1:section_end]))
            offset += size
        if next(iter(command), None) == 'hangup':
            return _HANGUP
        reply = self._dispatch(command, connection_id)
        if flags & _MORE_TO_COME:
            return None  # unacknowledged write: the client expects no answer
        payload = struct.pack('<IB', 0, 0) + bson.encode(reply)
        return self._header(len(payload), request_id, OP_MSG) + payload

    # -- commands --------------------------------------------------------------------------------------
    def _dispatch(self, command: Dict[str, Any], connection_id: int) -> Dict[str, Any]:
        name = next(iter(command))
        database = command.get('$db', 'admin')
        with self._lock:
            self.commands.append(command)
        lowered = name.lower()
        if lowered in ('hello', 'ismaster'):
            return {'ok': 1.0, 'isWritablePrimary': True, 'ismaster': True, 'helloOk': True,
                    'maxWireVersion': 21, 'minWireVersion': 0, 'maxBsonObjectSize': 16 * 1024 * 1024,
                    'maxMessageSizeBytes': 48000000, 'maxWriteBatchSize': 100000,
                    'localTime': datetime.datetime.now(datetime.timezone.utc),
                    'logicalSessionTimeoutMinutes': 30, 'connectionId': connection_id, 'readOnly': False}
        if lowered in ('ping', 'endsessions', 'killcursors'):
            return {'ok': 1.0}
        if name == 'insert':
            documents = command.get('documents', [])
            with self._lock:
                self.collections.setdefault((database, command[name]), []).extend(documents)
            return {'n': len(documents), 'ok': 1.0}
        if name == 'find':
            wanted = command.get('filter') or {}
            with self._lock:
                stored = list(self.collections.get((database, command[name]), []))
            batch = [doc for doc in stored if all(doc.get(k) == v for k, v in wanted.items())]
            if command.get('limit'):
                batch = batch[:command['limit']]
            return {'cursor': {'id': bson.Int64(0), 'ns': '%s.%s' % (database, command[name]), 'firstBatch': batch},
                    'ok': 1.0}
        if name == 'fail':
            return {'ok': 0.0, 'errmsg': command.get('errmsg', 'failed on purpose'),
                    'code': command.get('code', 8000), 'codeName': command.get('codeName', 'AtlasError')}
        return {'ok': 0.0, 'errmsg': "no such command: '%s'" % name, 'code': 59, 'codeName': 'CommandNotFound'}
