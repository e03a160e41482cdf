"""One ``remote`` subsegment per SQL statement sent to the database, from SQLAlchemy engine events.

``before_cursor_execute`` begins the subsegment, ``after_cursor_execute`` ends it and ``handle_error``
records the error and ends it. Listening on the ``Engine`` class covers every engine, including
those created before ``patch()``. Nothing is wrapped, so ``unpatch()`` simply removes the listeners.

The static part of the ``sql`` block (URL without password, dialect, versions) is computed once per
engine and kept in a weak mapping that shrinks when engines are disposed of.
"""
import logging
import threading
import weakref
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ...core import xray_recorder
from ...core.suppression import is_suppressed
from ...core.utils.stacktrace import get_stacktrace
from .._patching import log_once
from .._sql import build_sql_meta, query_for_trace

__all__ = ['patch', 'unpatch']

log = logging.getLogger(__name__)

# Attribute set on SQLAlchemy's per-statement ExecutionContext to carry the subsegment from the
# "before" event to the "after"/"error" event of the same statement.
_CONTEXT_ATTR = '_aws_like_sdk_subsegment'

_lock = threading.Lock()
_patched = False
_engine_meta: 'weakref.WeakKeyDictionary[Any, Tuple[str, Dict[str, Any]]]' = weakref.WeakKeyDictionary()


def _driver_version(dialect: Any) -> Optional[str]:
    driver = getattr(dialect, 'driver', None)
    dbapi = getattr(dialect, 'loaded_dbapi', None)
    version = getattr(dbapi, '__version__', None) if dbapi is not None else None
    if version:
        return '%s-%s' % (driver, str(version).split(' ', 1)[0])
    return driver


def _static_meta(engine: Any) -> Tuple[str, Dict[str, Any]]:
    """Subsegment name and the query-independent ``sql`` fields of ``engine`` (cached per engine)."""
    cached = _engine_meta.get(engine)
    if cached is not None:
        return cached
    url = engine.url
    dialect = engine.dialect
    server_version = getattr(dialect, 'server_version_info', None)
    meta = build_sql_meta(
        database_type=dialect.name,
        url=url.set(password=None).render_as_string(hide_password=False),
        user=url.username,
        database_version='.'.join(str(part) for part in server_version) if server_version else None,
        driver_version=_driver_version(dialect),
        stream_sql=False,
    )
    if url.host:
        name = '%s:%s' % (url.host, url.port) if url.port else url.host
    else:
        name = url.database or dialect.name
    result = (name, meta)
    # Cursor events fire only on a live connection, so the dialect is initialised by now.
    _engine_meta[engine] = result
    return result


def _before_cursor_execute(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any,
                           executemany: bool) -> None:
    if is_suppressed() or context is None:
        return
    try:
        recorder = xray_recorder
        entity = recorder.context.peek_trace_entity()
        if entity is None or not entity.sampled:
            return
        name, static = _static_meta(conn.engine)
        sql = dict(static)
        text = query_for_trace(statement, recorder.stream_sql)
        if text:
            sql['sanitized_query'] = text
        subsegment = recorder.begin_subsegment(name, 'remote')
        if subsegment is None:
            return
        subsegment.set_sql(sql)
        setattr(context, _CONTEXT_ATTR, subsegment)
    except Exception:  # noqa: BLE001 - never let tracing break a query
        log_once('sqlalchemy_core.before', 'Could not begin a SQLAlchemy statement subsegment.')


def _after_cursor_execute(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any,
                          executemany: bool) -> None:
    subsegment = _take_subsegment(context)
    if subsegment is None:
        return
    try:
        xray_recorder.end_subsegment_by_handle(subsegment)
    except Exception:  # noqa: BLE001
        log_once('sqlalchemy_core.after', 'Could not end a SQLAlchemy statement subsegment.')


def _handle_error(exception_context: Any) -> None:
    # Must return None: a returned exception would replace the one the application gets.
    subsegment = _take_subsegment(getattr(exception_context, 'execution_context', None))
    if subsegment is None:
        return
    try:
        error = exception_context.sqlalchemy_exception or exception_context.original_exception
        subsegment.add_exception(error, get_stacktrace(limit=xray_recorder.max_trace_back))
        xray_recorder.end_subsegment_by_handle(subsegment)
    except Exception:  # noqa: BLE001
        log_once('sqlalchemy_core.error', 'Could not record a SQLAlchemy error on its subsegment.')


def _take_subsegment(context: Any) -> Any:
    if context is None:
        return None
    subsegment = context.__dict__.pop(_CONTEXT_ATTR, None)
    return subsegment if subsegment is not None and subsegment.in_progress else None


_LISTENERS = (
    ('before_cursor_execute', _before_cursor_execute),
    ('after_cursor_execute', _after_cursor_execute),
    ('handle_error', _handle_error),
)


def patch() -> None:
    """Trace every SQL statement of every SQLAlchemy engine (idempotent)."""
    global _patched
    with _lock:
        if _patched:
            return
        for name, listener in _LISTENERS:
            event.listen(Engine, name, listener)
        _patched = True


def unpatch() -> None:
    """Stop tracing SQLAlchemy statements (idempotent)."""
    global _patched
    with _lock:
        if not _patched:
            return
        for name, listener in _LISTENERS:
            if event.contains(Engine, name, listener):
                event.remove(Engine, name, listener)
        _patched = False
        _engine_meta.clear()
