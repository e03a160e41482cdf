"""Proxies that record DB-API 2.0 (PEP 249) calls as ``remote`` subsegments with an ``sql`` block.

Driver connection and cursor classes are often defined in C and cannot be patched, so the driver's
``connect`` is wrapped instead and the connection it returns is proxied; the proxy hands out
proxied cursors whose ``execute``, ``executemany`` and ``callproc`` are recorded::

    conn = XRayTracedConn(driver.connect(...), meta={'database_type': 'PostgreSQL', 'url': url})

``meta`` may hold ``name`` (the subsegment name; the method name otherwise), ``database_type``
(the cursor's top-level module name otherwise), ``url`` (credentials are stripped), ``user``,
``database_version`` and ``driver_version``. The query text is recorded under the recorder's
``stream_sql`` setting (sanitized by default); parameters are never recorded.

Proxies keep their state in ``_self_*`` attributes so they never shadow the driver's own.
"""
import functools
import logging
from typing import Any, Callable, Dict, Mapping, Optional

import wrapt

from .. import global_sdk_config
from ..core import _recording
from ..core.models.entity import sanitize_name
from ..core.suppression import is_suppressed
from ._patching import guard, log_once
from ._sql import build_sql_meta, query_for_trace

log = logging.getLogger(__name__)

__all__ = ['XRayTracedConn', 'XRayTracedCursor', 'add_sql_meta']

_SQL_KEYS = ('url', 'user', 'database_type', 'database_version', 'driver_version')
# Keyword names drivers use for the statement, when it is not passed positionally.
_QUERY_KEYWORDS = ('query', 'sql', 'operation', 'procname', 'statement')


_global_recorder = None


def _recorder():
    # Imported on first use (the core package imports ext lazily) and kept: this runs per query.
    global _global_recorder
    if _global_recorder is None:
        from ..core import xray_recorder
        _global_recorder = xray_recorder
    return _global_recorder


def current_entity(recorder) -> Any:
    """The current segment/subsegment, or None, without triggering the context-missing strategy.

    A database call outside any segment is not an error of the application's: it simply goes
    untraced rather than logging (or, with RUNTIME_ERROR, raising) on every query.
    """
    context = recorder.context
    peek = getattr(context, 'peek_trace_entity', None)
    if peek is not None:
        return peek()
    try:
        return context.get_trace_entity()
    except Exception:  # noqa: BLE001 - a RUNTIME_ERROR strategy must not reach the application
        return None


def should_trace(recorder) -> bool:
    """True when a call made now would be recorded (not suppressed, SDK on, a sampled entity).

    Never raises: a failure here means "don't trace", so it can run ahead of the guarded path.
    """
    try:
        if is_suppressed() or not global_sdk_config.sdk_enabled():
            return False
        entity = current_entity(recorder)
        return entity is not None and bool(entity.sampled)
    except Exception:  # noqa: BLE001
        log_once('dbapi2.should_trace', 'Could not read the current trace entity; the call proceeds untraced.')
        return False


def _query_of(args, kwargs) -> Any:
    if args:
        return args[0]
    for key in _QUERY_KEYWORDS:
        if key in kwargs:
            return kwargs[key]
    return None


@functools.lru_cache(maxsize=512)
def _cached_query_text(query: str, stream_sql: Any) -> Optional[str]:
    return query_for_trace(query, stream_sql)


def _query_text(query: Any, stream_sql: Any) -> Optional[str]:
    # Applications run the same parameterized statements over and over; sanitizing is a regex pass
    # that costs more than the rest of the instrumentation, so remember recent results.
    if isinstance(query, str) and isinstance(stream_sql, (bool, str)):
        return _cached_query_text(query, stream_sql)
    return query_for_trace(query, stream_sql)


def _make_tracer(method: str) -> Callable:
    def tracer(wrapped, instance, args, kwargs):
        recorder = _recorder()
        if not should_trace(recorder):
            return wrapped(*args, **kwargs)
        name = instance._self_xray_name or method
        sql = dict(instance._self_xray_sql)
        text = _query_text(_query_of(args, kwargs), recorder.stream_sql)
        if text:
            sql['sanitized_query'] = text

        def set_sql(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack):
            subsegment.set_sql(sql)
            if exception is not None:
                subsegment.add_exception(exception, stack)

        return _recording.record_sync(recorder, wrapped, instance, args, kwargs, name, 'remote', set_sql)

    tracer.__qualname__ = 'XRayTracedCursor.%s' % method
    return guard(tracer)


_trace_execute = _make_tracer('execute')
_trace_executemany = _make_tracer('executemany')
_trace_callproc = _make_tracer('callproc')
_trace_executescript = _make_tracer('executescript')


class XRayTracedConn(wrapt.ObjectProxy):
    """A DB-API connection whose cursors record their calls.

    Args:
        conn: the driver's connection.
        meta: ``sql`` fields and optional ``name`` shared by every cursor of this connection; it
            is copied, never modified.
    """

    #: The proxy class given to cursors; driver integrations may refine it.
    _xray_cursor_class: Optional[type] = None

    def __init__(self, conn: Any, meta: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(conn)
        self._self_xray_meta: Dict[str, Any] = dict(meta or {})

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Return the driver's cursor wrapped in an :class:`XRayTracedCursor`."""
        cursor = self.__wrapped__.cursor(*args, **kwargs)
        return self._xray_wrap_cursor(cursor)

    def _xray_wrap_cursor(self, cursor: Any) -> Any:
        if isinstance(cursor, XRayTracedCursor):
            return cursor
        try:
            return (self._xray_cursor_class or XRayTracedCursor)(cursor, self._self_xray_meta)
        except Exception:  # noqa: BLE001 - an untraced cursor beats a failing one
            log.warning('Could not trace cursor %r.', type(cursor).__name__, exc_info=True)
            return cursor

    def __enter__(self) -> Any:
        value = self.__wrapped__.__enter__()
        # Most drivers return the connection itself; keep handing out the proxy in that case.
        return self if value is self.__wrapped__ else value

    def __exit__(self, exc_type, exc_val, exc_tb) -> Any:
        return self.__wrapped__.__exit__(exc_type, exc_val, exc_tb)


class XRayTracedCursor(wrapt.ObjectProxy):
    """A DB-API cursor whose ``execute``, ``executemany`` and ``callproc`` become subsegments.

    Args:
        cursor: the driver's cursor.
        meta: ``sql`` fields and optional ``name`` (see the module docstring); copied, never
            modified.
    """

    def __init__(self, cursor: Any, meta: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(cursor)
        meta = dict(meta or {})
        if not meta.get('database_type'):
            meta['database_type'] = type(cursor).__module__.split('.')[0]
        self._self_xray_meta: Dict[str, Any] = meta
        self._self_xray_name: Optional[str] = str(meta['name']) if meta.get('name') else None
        self._self_xray_sql: Dict[str, Any] = build_sql_meta(**{k: meta.get(k) for k in _SQL_KEYS})

    def _xray_result(self, result: Any) -> Any:
        # Drivers that return the cursor from execute (sqlite3, psycopg) allow chaining; keep the proxy.
        return self if result is self.__wrapped__ else result

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``query`` inside a subsegment and return what the driver returns."""
        if not should_trace(_recorder()):
            # The untraced path skips the guard's bookkeeping: most queries in a process that is
            # not sampling, or outside any segment, take it.
            return self._xray_result(self.__wrapped__.execute(query, *args, **kwargs))
        return self._xray_result(_trace_execute(self.__wrapped__.execute, self, (query,) + args, kwargs))

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``executemany`` inside a subsegment; parameters are not recorded."""
        if not should_trace(_recorder()):
            return self._xray_result(self.__wrapped__.executemany(query, *args, **kwargs))
        return self._xray_result(_trace_executemany(self.__wrapped__.executemany, self, (query,) + args, kwargs))

    def callproc(self, proc: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a stored procedure inside a subsegment; the procedure name stands for the query."""
        if not should_trace(_recorder()):
            return self._xray_result(self.__wrapped__.callproc(proc, *args, **kwargs))
        return self._xray_result(_trace_callproc(self.__wrapped__.callproc, self, (proc,) + args, kwargs))

    def __enter__(self) -> Any:
        value = self.__wrapped__.__enter__()
        return self if value is self.__wrapped__ else value

    def __exit__(self, exc_type, exc_val, exc_tb) -> Any:
        return self.__wrapped__.__exit__(exc_type, exc_val, exc_tb)


def add_sql_meta(meta: Mapping[str, Any]) -> None:
    """Give the current subsegment the ``sql`` block described by ``meta`` (compatibility helper).

    ``meta['name']``, when present, renames the subsegment; the other keys become the ``sql``
    block (credentials stripped from ``url``). The subsegment's namespace becomes ``remote``.

    Args:
        meta: ``name`` plus ``sql`` fields, as accepted by :class:`XRayTracedConn`.
    """
    recorder = _recorder()
    entity = current_entity(recorder)
    if entity is None or getattr(entity, 'type', None) != 'subsegment' or not entity.sampled:
        return
    if meta.get('name'):
        entity.name = sanitize_name(meta['name'])
    sql = build_sql_meta(**{k: meta.get(k) for k in _SQL_KEYS})
    if meta.get('sanitized_query'):
        sql['sanitized_query'] = meta['sanitized_query']
    entity.set_sql(sql)
    entity.namespace = 'remote'
