"""Database subsegments through Django's public ``connection.execute_wrapper`` mechanism.

:func:`patch_db` installs one execute wrapper on every database connection: those already open in
the calling thread, and every connection opened later in any thread (Django's
``connection_created`` signal). Each ``execute``/``executemany`` run while a sampled segment is
current becomes a ``remote`` subsegment with an ``sql`` block; parameters are never recorded and
the query text follows the recorder's ``stream_sql`` (False: none, True: literals replaced by
``?``, ``'raw'``: as written). Outside any segment (migrations, management commands, start-up
checks) the wrapper only calls through: nothing is raised, logged or emitted.
"""
import logging
import platform
import sys
from contextvars import ContextVar
from typing import Any, Dict, Optional
from urllib.parse import quote

import wrapt
from django.db import connections
from django.db.backends.signals import connection_created

from ...core import _recording
from ...core.suppression import is_suppressed, suppress_tracing
from .._patching import guard
from .._sql import build_sql_meta

log = logging.getLogger(__name__)

__all__ = ['patch_db', 'unpatch_db', 'DjangoXRayTracedCursor']

_META_ATTR = '_aws_like_sdk_sql_meta'
_DISPATCH_UID = 'aws_like_sdk.ext.django.db'

_patched = False
# Set while DjangoXRayTracedCursor records a call, so the execute wrapper underneath does not
# record the same query a second time.
_in_traced_cursor: ContextVar[bool] = ContextVar('aws_like_sdk_django_traced_cursor', default=False)


def _recorder() -> Any:
    from ...core import xray_recorder
    return xray_recorder


def _driver_version(database: Any) -> Optional[str]:
    if database is None:
        return None
    module = getattr(database, '__name__', '').partition('.')[0] or None
    version = getattr(database, '__version__', None)
    if version is None and module in getattr(sys, 'stdlib_module_names', ('sqlite3',)):
        # Standard-library drivers (sqlite3) are versioned with Python itself.
        version = platform.python_version()
    if module and version:
        return '%s %s' % (module, str(version).split(' ')[0])
    return module


def _connection_url(connection: Any) -> Optional[str]:
    settings_dict = connection.settings_dict
    name = str(settings_dict.get('NAME') or '')
    host = str(settings_dict.get('HOST') or '')
    port = str(settings_dict.get('PORT') or '')
    user = str(settings_dict.get('USER') or '')
    netloc = host
    if host and user:
        netloc = '%s@%s' % (quote(user, safe=''), host)
    if host and port:
        netloc = '%s:%s' % (netloc, port)
    if not netloc and not name:
        return None
    path = name if name.startswith('/') else '/' + name
    return '%s://%s%s' % (connection.vendor, netloc, quote(path, safe='/:@'))


# Backends whose get_database_version() reads the connection without running a statement.
_VERSION_WITHOUT_QUERY = ('sqlite', 'postgresql', 'oracle')


def _database_version(connection: Any) -> Optional[str]:
    try:
        with suppress_tracing():
            if connection.vendor == 'mysql':
                version = connection.connection.get_server_info()
            elif connection.vendor in _VERSION_WITHOUT_QUERY:
                version = connection.get_database_version()
            else:
                # A query here would run in the middle of the application's own statement.
                return None
    except Exception:  # noqa: BLE001 - not every backend can tell, and that is fine
        return None
    if isinstance(version, tuple):
        return '.'.join(str(part) for part in version)
    return str(version) if version else None


def _connection_meta(connection: Any) -> Dict[str, Any]:
    """The query-independent part of the ``sql`` block, cached on the connection object."""
    meta = connection.__dict__.get(_META_ATTR)
    if meta is None:
        settings_dict = connection.settings_dict
        meta = {
            'name': settings_dict.get('HOST') or None,
            'database_type': connection.vendor,
            'user': settings_dict.get('USER') or None,
            'url': _connection_url(connection),
            'driver_version': _driver_version(getattr(connection, 'Database', None)),
            'database_version': None,
        }
        setattr(connection, _META_ATTR, meta)
    return meta


def _sql_block(connection: Any, sql: Any, stream_sql: Any, succeeded: bool) -> Dict[str, Any]:
    meta = _connection_meta(connection)
    if meta['database_version'] is None and succeeded and connection.connection is not None:
        # Looked up once, after a successful query, so the lookup never runs before the
        # application's own statement or inside a failed transaction.
        meta['database_version'] = _database_version(connection) or ''
    return build_sql_meta(database_type=meta['database_type'], url=meta['url'], user=meta['user'],
                          database_version=meta['database_version'] or None,
                          driver_version=meta['driver_version'], query=sql, stream_sql=stream_sql)


def _sampled_entity(recorder: Any) -> Any:
    entity = recorder.context.peek_trace_entity()
    return entity if entity is not None and entity.sampled and entity.in_progress else None


def _record_query(recorder: Any, call: Any, instance: Any, args: tuple, kwargs: dict, connection: Any,
                  sql: Any, many: bool) -> Any:
    """Run ``call(*args, **kwargs)`` inside a remote subsegment describing ``sql`` on ``connection``."""
    stream_sql = recorder.stream_sql
    name = _connection_meta(connection)['name'] or ('executemany' if many else 'execute')

    def meta_processor(exception: Optional[BaseException], subsegment: Any, stack: Any, **_: Any) -> None:
        subsegment.set_sql(_sql_block(connection, sql, stream_sql, exception is None))
        if exception is not None:
            subsegment.add_exception(exception, stack)

    return _recording.record_sync(recorder, call, instance, args, kwargs, name, 'remote', meta_processor)


@guard
def _trace_execute(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    # args is Django's execute-wrapper call: (sql, params, many, context).
    if not _patched or is_suppressed() or _in_traced_cursor.get():
        return wrapped(*args, **kwargs)
    recorder = _recorder()
    if _sampled_entity(recorder) is None:
        return wrapped(*args, **kwargs)
    sql, _params, many, context = args
    return _record_query(recorder, wrapped, None, args, kwargs, context['connection'], sql, many)


def xray_execute_wrapper(execute: Any, sql: Any, params: Any, many: bool, context: Dict[str, Any]) -> Any:
    """The execute wrapper installed on every connection (see ``connection.execute_wrapper``)."""
    return _trace_execute(execute, None, (sql, params, many, context), {})


def _install(connection: Any) -> None:
    wrappers = getattr(connection, 'execute_wrappers', None)
    if wrappers is not None and xray_execute_wrapper not in wrappers:
        # Outermost position: other wrappers (e.g. a query blocker in tests) run inside our timing.
        wrappers.insert(0, xray_execute_wrapper)


def _uninstall(connection: Any) -> None:
    wrappers = getattr(connection, 'execute_wrappers', None)
    while wrappers and xray_execute_wrapper in wrappers:
        wrappers.remove(xray_execute_wrapper)


def _on_connection_created(sender: Any, connection: Any = None, **kwargs: Any) -> None:
    if connection is not None:
        try:
            _install(connection)
        except Exception:  # noqa: BLE001
            log.debug('Could not install the X-Ray execute wrapper on %r.', connection, exc_info=True)


def _initialized_connections() -> list:
    try:
        return list(connections.all(initialized_only=True))
    except TypeError:  # Django < 4.1 has no initialized_only
        return [connections[alias] for alias in connections if hasattr(connections._connections, alias)]


def patch_db() -> None:
    """Trace every query on every configured database connection. Idempotent; undone by :func:`unpatch_db`."""
    global _patched
    connection_created.connect(_on_connection_created, weak=False, dispatch_uid=_DISPATCH_UID)
    # Connections the signal will never announce again: created (and maybe opened) before now.
    for connection in _initialized_connections():
        _install(connection)
    _patched = True


def unpatch_db() -> None:
    """Stop tracing queries: disconnect the signal and remove the wrapper from this thread's connections.

    Connections held by other threads keep the wrapper object, which then only calls through.
    """
    global _patched
    _patched = False
    connection_created.disconnect(dispatch_uid=_DISPATCH_UID)
    for connection in _initialized_connections():
        _uninstall(connection)


class DjangoXRayTracedCursor(wrapt.ObjectProxy):
    """Proxy for a Django cursor that records ``execute``, ``executemany`` and ``callproc``.

    :func:`patch_db` does not need it (it uses execute wrappers); it is kept under its upstream name
    for code that wraps cursors by hand, and it also covers ``callproc``, which Django's execute
    wrappers do not see. A query recorded here is not recorded again by the execute wrapper.

    Args:
        cursor: a cursor from ``connection.cursor()``.
        meta: optional ``sql`` fields overriding those derived from the connection; ``name``
            overrides the subsegment name.
    """

    def __init__(self, cursor: Any, meta: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(cursor)
        self._self_meta = dict(meta) if meta else {}

    def _self_record(self, method: str, sql: Any, args: tuple, kwargs: dict) -> Any:
        call = getattr(self.__wrapped__, method)
        recorder = _recorder()
        if is_suppressed() or _sampled_entity(recorder) is None:
            return call(*args, **kwargs)
        connection = getattr(self.__wrapped__, 'db', None)
        token = _in_traced_cursor.set(True)
        try:
            return _recording.record_sync(recorder, call, None, args, kwargs, self._self_name(connection, method),
                                          'remote', self._self_meta_processor(connection, sql, recorder.stream_sql))
        finally:
            _in_traced_cursor.reset(token)

    def _self_name(self, connection: Any, method: str) -> str:
        if self._self_meta.get('name'):
            return str(self._self_meta['name'])
        if connection is not None and getattr(connection, 'settings_dict', None) is not None:
            try:
                return _connection_meta(connection)['name'] or method
            except Exception:  # noqa: BLE001 - an odd connection object still gets its query traced
                log.debug('Could not describe connection %r.', connection, exc_info=True)
        return method

    def _self_meta_processor(self, connection: Any, sql: Any, stream_sql: Any) -> Any:
        extra = {key: value for key, value in self._self_meta.items() if key != 'name'}

        def meta_processor(exception: Optional[BaseException], subsegment: Any, stack: Any, **_: Any) -> None:
            if connection is not None and getattr(connection, 'settings_dict', None) is not None:
                block = _sql_block(connection, sql, stream_sql, exception is None)
            else:
                block = build_sql_meta(query=sql, stream_sql=stream_sql)
            block.update(extra)
            subsegment.set_sql(block)
            if exception is not None:
                subsegment.add_exception(exception, stack)

        return meta_processor

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        return self._self_record('execute', query, (query,) + args, kwargs)

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        return self._self_record('executemany', query, (query,) + args, kwargs)

    def callproc(self, procname: Any, *args: Any, **kwargs: Any) -> Any:
        return self._self_record('callproc', procname, (procname,) + args, kwargs)

    def __enter__(self) -> 'DjangoXRayTracedCursor':
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self.__wrapped__.__exit__(*exc_info)
