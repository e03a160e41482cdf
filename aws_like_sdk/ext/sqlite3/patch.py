"""Trace sqlite3 through ``sqlite3.connect`` → :class:`XRayTracedSQLite` → traced cursors.

Subsegments are named after the database path and carry ``database_type`` ``sqlite3`` and
``database_version`` ``sqlite3.sqlite_version``. Only the module attribute ``sqlite3.connect`` is
wrapped: code that ran ``from sqlite3 import connect`` before :func:`patch` keeps the original
(call ``patch`` first, or use ``aws_like_sdk.core.patch`` which can defer until import).
"""
import logging
import os
import sqlite3
from typing import Any

from .._patching import guard, is_wrapped, unwrap, wrap
from ..dbapi2 import XRayTracedConn, XRayTracedCursor, _recorder, _trace_executescript, should_trace

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'XRayTracedSQLite', 'XRayTracedSQLiteCursor']


class XRayTracedSQLiteCursor(XRayTracedCursor):
    """A traced sqlite3 cursor; ``executescript`` is recorded too."""

    def executescript(self, sql_script: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a script inside a subsegment."""
        if not should_trace(_recorder()):
            return self._xray_result(self.__wrapped__.executescript(sql_script, *args, **kwargs))
        return self._xray_result(
            _trace_executescript(self.__wrapped__.executescript, self, (sql_script,) + args, kwargs))


class XRayTracedSQLite(XRayTracedConn):
    """A traced sqlite3 connection, including the ``execute*`` shortcuts on the connection."""

    _xray_cursor_class = XRayTracedSQLiteCursor

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Like ``sqlite3.Connection.execute``: a new traced cursor runs the statement."""
        return self.cursor().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        """Like ``sqlite3.Connection.executemany``, traced."""
        return self.cursor().executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        """Like ``sqlite3.Connection.executescript``, traced."""
        return self.cursor().executescript(*args, **kwargs)


def _database_name(args, kwargs) -> str:
    database = args[0] if args else kwargs.get('database', '')
    if isinstance(database, bytes):
        return database.decode('utf-8', errors='replace')
    return os.fspath(database) if isinstance(database, os.PathLike) else str(database)


@guard
def _xray_traced_connect(wrapped, instance, args, kwargs):
    conn = wrapped(*args, **kwargs)
    if isinstance(conn, XRayTracedConn):
        return conn
    meta = {'name': _database_name(args, kwargs), 'database_type': 'sqlite3',
            'database_version': sqlite3.sqlite_version}
    return XRayTracedSQLite(conn, meta)


def patch() -> None:
    """Wrap ``sqlite3.connect``; idempotent."""
    if is_wrapped(sqlite3, 'connect'):
        return
    wrap(sqlite3, 'connect', _xray_traced_connect)


def unpatch() -> None:
    """Restore ``sqlite3.connect``; connections already open stay traced."""
    from ...core.patcher import _PATCHED_MODULES
    unwrap(sqlite3, 'connect')
    _PATCHED_MODULES.discard('sqlite3')
