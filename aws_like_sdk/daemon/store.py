"""The SQLite trace store: documents keyed by (trace, id), per-trace summaries, retention.

One writer thread owns the write connection and inserts in batches; readers (HTTP
handlers, the CLI) open their own connections, which WAL mode lets run concurrently.
"""
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .documents import Document, http_summary

log = logging.getLogger(__name__)

DEFAULT_MAX_TRACES = 10000
#: More documents than this in one trace are refused: they could not be viewed anyway.
MAX_DOCUMENTS_PER_TRACE = 20000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    trace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL,
    in_progress INTEGER NOT NULL,
    error INTEGER NOT NULL,
    fault INTEGER NOT NULL,
    throttle INTEGER NOT NULL,
    received REAL NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (trace_id, id)
);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    root_id TEXT,
    name TEXT,
    method TEXT,
    url TEXT,
    status INTEGER,
    start_time REAL,
    end_time REAL,
    duration REAL,
    error INTEGER NOT NULL DEFAULT 0,
    fault INTEGER NOT NULL DEFAULT 0,
    throttle INTEGER NOT NULL DEFAULT 0,
    in_progress INTEGER NOT NULL DEFAULT 0,
    documents INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_time);
CREATE INDEX IF NOT EXISTS traces_seq ON traces (seq);
CREATE TABLE IF NOT EXISTS annotations (
    trace_id TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_kv ON annotations (key, value);
CREATE INDEX IF NOT EXISTS annotations_trace ON annotations (trace_id, entity_id);
CREATE TABLE IF NOT EXISTS services (
    trace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (trace_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS services_name ON services (name);
"""

# A complete document replaces an in-progress one with the same id, never the reverse,
# whatever order the two datagrams arrive in.
_UPSERT = """
INSERT INTO documents (trace_id, id, parent_id, type, name, start_time, end_time, in_progress,
                       error, fault, throttle, received, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (trace_id, id) DO UPDATE SET
    parent_id = excluded.parent_id, type = excluded.type, name = excluded.name,
    start_time = excluded.start_time, end_time = excluded.end_time,
    in_progress = excluded.in_progress, error = excluded.error, fault = excluded.fault,
    throttle = excluded.throttle, received = excluded.received, body = excluded.body
WHERE documents.in_progress = 1 OR excluded.in_progress = 0
"""

_SUMMARY_COLUMNS = ('trace_id', 'root_id', 'name', 'method', 'url', 'status', 'start_time',
                    'end_time', 'duration', 'error', 'fault', 'throttle', 'in_progress',
                    'documents', 'updated', 'seq')


def default_db_path() -> Path:
    """``$AWS_LIKE_SDK_DB``, else ``$XDG_DATA_HOME/aws-like-sdk/traces.sqlite3``
    (``~/.local/share/aws-like-sdk/traces.sqlite3`` when XDG_DATA_HOME is unset)."""
    explicit = os.environ.get('AWS_LIKE_SDK_DB')
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get('XDG_DATA_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'share')
    return Path(base) / 'aws-like-sdk' / 'traces.sqlite3'


@dataclass
class TraceFilter:
    """Filters for :meth:`Store.list_traces`; None means "any"."""

    service: Optional[str] = None
    status: Optional[str] = None        # "500", "5xx" or "4xx"
    flag: Optional[str] = None          # "error", "fault", "throttle" or "ok"
    annotation: Optional[str] = None    # "key=value" (or just "key")
    min_duration: Optional[float] = None  # seconds
    after_seq: Optional[int] = None     # only traces updated after this sequence number
    limit: int = 100


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute('PRAGMA busy_timeout = 10000')
    return conn


class Store:
    """SQLite-backed trace store.

    Args:
        path: database file; parent directories are created.
        max_traces: retention limit; the oldest traces beyond it are deleted.
        max_age: optional retention age in seconds.
    """

    def __init__(self, path: os.PathLike, max_traces: int = DEFAULT_MAX_TRACES,
                 max_age: Optional[float] = None) -> None:
        self.path = str(path)
        Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.max_traces = max_traces
        self.max_age = max_age
        self._write = _connect(self.path)
        self._write.execute('PRAGMA journal_mode = WAL')
        # NORMAL is durable across application crashes in WAL mode, and much faster.
        self._write.execute('PRAGMA synchronous = NORMAL')
        self._write.executescript(_SCHEMA)
        self._write.commit()
        self._seq = self._write.execute('SELECT coalesce(max(seq), 0) FROM traces').fetchone()[0]
        self._local = threading.local()

    # -- writing (one thread only) ------------------------------------------------------

    def write_batch(self, documents: Sequence[Document], received: Optional[float] = None) -> int:
        """Insert documents in one transaction and refresh the summaries of their traces.

        Args:
            documents: parsed documents, in arrival order.
            received: arrival time; defaults to now.

        Returns:
            The number of documents stored (documents over the per-trace limit are skipped).
        """
        if not documents:
            return 0
        received = time.time() if received is None else received
        conn = self._write
        stored = 0
        touched: Dict[str, None] = {}
        with conn:
            counts = self._document_counts(conn, {d.trace_id for d in documents})
            for doc in documents:
                if counts.get(doc.trace_id, 0) >= MAX_DOCUMENTS_PER_TRACE:
                    continue
                cursor = conn.execute(_UPSERT, (
                    doc.trace_id, doc.id, doc.parent_id, doc.type, doc.name, doc.start_time,
                    doc.end_time, int(doc.in_progress), int(doc.error), int(doc.fault),
                    int(doc.throttle), received, doc.raw))
                if cursor.rowcount == 0:
                    continue  # an in-progress copy of something already complete
                counts[doc.trace_id] = counts.get(doc.trace_id, 0) + 1
                stored += 1
                touched[doc.trace_id] = None
                conn.execute('DELETE FROM annotations WHERE trace_id = ? AND entity_id = ?',
                             (doc.trace_id, doc.id))
                if doc.annotations:
                    conn.executemany('INSERT INTO annotations VALUES (?, ?, ?, ?)',
                                     [(doc.trace_id, doc.id, k, v) for k, v in doc.annotations])
                if doc.type == 'segment':
                    conn.execute('INSERT OR IGNORE INTO services VALUES (?, ?)', (doc.trace_id, doc.name))
            for trace_id in touched:
                self._refresh_summary(conn, trace_id, received)
        return stored

    @staticmethod
    def _document_counts(conn: sqlite3.Connection, trace_ids: Iterable[str]) -> Dict[str, int]:
        ids = list(trace_ids)
        counts: Dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = conn.execute('SELECT trace_id, documents FROM traces WHERE trace_id IN (%s)'
                                % ','.join('?' * len(chunk)), chunk)
            counts.update((row[0], row[1]) for row in rows)
        return counts

    def _refresh_summary(self, conn: sqlite3.Connection, trace_id: str, now: float) -> None:
        agg = conn.execute("""
            SELECT min(start_time), max(coalesce(end_time, start_time)),
                   max(CASE WHEN type = 'segment' THEN error ELSE 0 END),
                   max(CASE WHEN type = 'segment' THEN fault ELSE 0 END),
                   max(CASE WHEN type = 'segment' THEN throttle ELSE 0 END),
                   max(in_progress), count(*)
            FROM documents WHERE trace_id = ?""", (trace_id,)).fetchone()
        # The root is the segment nobody called (no parent_id); before it arrives, the
        # earliest document stands in so the trace is listed at all.
        root = conn.execute("""
            SELECT id, name, body FROM documents WHERE trace_id = ?
            ORDER BY type != 'segment', parent_id IS NOT NULL, start_time LIMIT 1""",
                            (trace_id,)).fetchone()
        method = url = status = None
        try:
            body = json.loads(root['body'])
            if isinstance(body, dict):
                method, url, status = http_summary(body)
        except ValueError:
            pass
        start, end = agg[0], agg[1]
        self._seq += 1
        conn.execute("""
            INSERT OR REPLACE INTO traces (trace_id, root_id, name, method, url, status, start_time,
                end_time, duration, error, fault, throttle, in_progress, documents, updated, seq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                     (trace_id, root['id'], root['name'], method, url, status, start, end,
                      max(0.0, end - start), agg[2], agg[3], agg[4], agg[5], agg[6], now, self._seq))

    def enforce_retention(self) -> int:
        """Delete traces beyond ``max_traces`` (oldest first) and older than ``max_age``.

        Returns:
            The number of traces deleted.
        """
        conn = self._write
        with conn:
            conn.execute('CREATE TEMP TABLE IF NOT EXISTS doomed (trace_id TEXT PRIMARY KEY)')
            conn.execute('DELETE FROM doomed')
            conn.execute('INSERT OR IGNORE INTO doomed SELECT trace_id FROM traces '
                         'ORDER BY start_time DESC LIMIT -1 OFFSET ?', (self.max_traces,))
            if self.max_age is not None:
                conn.execute('INSERT OR IGNORE INTO doomed SELECT trace_id FROM traces WHERE updated < ?',
                             (time.time() - self.max_age,))
            deleted = conn.execute('SELECT count(*) FROM doomed').fetchone()[0]
            if deleted:
                for table in ('documents', 'annotations', 'services', 'traces'):
                    conn.execute('DELETE FROM %s WHERE trace_id IN (SELECT trace_id FROM doomed)' % table)
        if deleted:
            log.info('retention: deleted %d traces', deleted)
        return deleted

    def close(self) -> None:
        """Close the write connection (reader connections close with their threads)."""
        self._write.close()

    # -- reading (any thread) -------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        return conn

    def list_traces(self, flt: TraceFilter) -> List[Dict[str, Any]]:
        """Trace summaries matching ``flt``, newest first (oldest first with ``after_seq``).

        Args:
            flt: the filters; values are always bound as SQL parameters.

        Returns:
            Summary dicts with the columns of the ``traces`` table plus ``services``.
        """
        where: List[str] = []
        params: List[Any] = []
        if flt.service:
            where.append('t.trace_id IN (SELECT trace_id FROM services WHERE name = ?)')
            params.append(flt.service)
        if flt.status:
            status = flt.status.strip().lower()
            if len(status) == 3 and status.endswith('xx') and status[0].isdigit():
                where.append('t.status >= ? AND t.status < ?')
                params += [int(status[0]) * 100, int(status[0]) * 100 + 100]
            elif status.isdigit():
                where.append('t.status = ?')
                params.append(int(status))
            else:
                raise ValueError('status must be a number like 500 or a class like 5xx')
        if flt.flag:
            flag = flt.flag.lower()
            if flag in ('error', 'fault', 'throttle'):
                where.append('t.%s = 1' % flag)  # flag is one of three literals, never user text
            elif flag == 'ok':
                where.append('t.error = 0 AND t.fault = 0 AND t.throttle = 0')
            else:
                raise ValueError('flag must be error, fault, throttle or ok')
        if flt.annotation:
            key, sep, value = flt.annotation.partition('=')
            if sep:
                where.append('t.trace_id IN (SELECT trace_id FROM annotations WHERE key = ? AND value = ?)')
                params += [key.strip(), value.strip()]
            else:
                where.append('t.trace_id IN (SELECT trace_id FROM annotations WHERE key = ?)')
                params.append(key.strip())
        if flt.min_duration is not None:
            where.append('t.duration >= ?')
            params.append(flt.min_duration)
        order = 't.start_time DESC'
        if flt.after_seq is not None:
            where.append('t.seq > ?')
            params.append(flt.after_seq)
            order = 't.seq ASC'
        sql = 'SELECT t.* FROM traces t'
        if where:
            sql += ' WHERE ' + ' AND '.join(where)
        sql += ' ORDER BY %s LIMIT ?' % order
        params.append(max(1, min(int(flt.limit), 10000)))
        conn = self._reader()
        rows = [dict(row) for row in conn.execute(sql, params)]
        for row in rows:
            row['services'] = [r[0] for r in conn.execute(
                'SELECT name FROM services WHERE trace_id = ? ORDER BY name', (row['trace_id'],))]
        return rows

    def get_documents(self, trace_id: str) -> List[Dict[str, Any]]:
        """Every stored document of a trace, parsed, in start-time order."""
        rows = self._reader().execute(
            'SELECT body FROM documents WHERE trace_id = ? ORDER BY start_time', (trace_id.lower(),))
        return [json.loads(row[0]) for row in rows]

    def get_summary(self, trace_id: str) -> Optional[Dict[str, Any]]:
        """The summary row of one trace, or None."""
        row = self._reader().execute('SELECT * FROM traces WHERE trace_id = ?', (trace_id.lower(),)).fetchone()
        return dict(row) if row else None

    def recent_trace_ids(self, limit: int) -> List[str]:
        """The ids of the newest ``limit`` traces."""
        rows = self._reader().execute('SELECT trace_id FROM traces ORDER BY start_time DESC LIMIT ?', (limit,))
        return [row[0] for row in rows]

    def services(self) -> List[str]:
        """Every segment name seen in stored traces."""
        return [row[0] for row in self._reader().execute('SELECT DISTINCT name FROM services ORDER BY name')]

    def counts(self) -> Tuple[int, int]:
        """``(traces, documents)`` currently stored."""
        conn = self._reader()
        return (conn.execute('SELECT count(*) FROM traces').fetchone()[0],
                conn.execute('SELECT count(*) FROM documents').fetchone()[0])

    def last_seq(self) -> int:
        """The newest summary sequence number (the cursor ``--follow`` starts from)."""
        return self._reader().execute('SELECT coalesce(max(seq), 0) FROM traces').fetchone()[0]
