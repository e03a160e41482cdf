"""The ``connect`` wrapper shared by the network database drivers (psycopg2, psycopg, pymysql,
pg8000, mysql-connector).

Each driver integration supplies two small functions: one reading the ``sql`` fields from the
``connect`` arguments (never the password), one refining them from the open connection (server
version, resolved host). The wrapper records the connection attempt itself as a ``connect``
subsegment, so slow or refused connections show up in the trace, and returns the connection in an
:class:`~aws_like_sdk.ext.dbapi2.XRayTracedConn`.
"""
import logging
from typing import Any, Callable, Dict, Optional, Tuple

from ..core import _recording
from ..core.suppression import is_suppressed
from ._patching import guard, log_once
from ._sql import build_sql_meta
from .dbapi2 import XRayTracedConn, _recorder, should_trace

log = logging.getLogger(__name__)

ParamsMeta = Callable[[Tuple[Any, ...], Dict[str, Any]], Dict[str, Any]]
ConnMeta = Callable[[Any, Dict[str, Any]], Dict[str, Any]]

_SQL_KEYS = ('url', 'user', 'database_type', 'database_version', 'driver_version')


def make_url(scheme: str, user: Any, host: Any, port: Any, database: Any) -> Optional[str]:
    """``scheme://user@host:port/database`` from whichever parts are known (never a password)."""
    if not host and not database:
        return None
    netloc = str(host or '')
    if ':' in netloc and not netloc.startswith('['):
        netloc = '[%s]' % netloc  # an IPv6 literal needs brackets to stay a valid URL
    if user:
        netloc = '%s@%s' % (user, netloc)
    if port:
        netloc = '%s:%s' % (netloc, port)
    return '%s://%s/%s' % (scheme, netloc, database or '')


def text(value: Any) -> Optional[str]:
    """Drivers keep some fields as bytes; the trace wants text."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode('utf-8', errors='replace')
    return str(value)


def traced_connect(driver: str, params_meta: ParamsMeta, conn_meta: ConnMeta,
                   conn_class: type = XRayTracedConn) -> Callable:
    """Build the wrapt wrapper for a driver's ``connect``.

    Args:
        driver: integration name, used in log messages.
        params_meta: ``(args, kwargs) -> meta`` from the ``connect`` arguments.
        conn_meta: ``(connection, meta) -> meta`` refined from the open connection.
        conn_class: the connection proxy class to return.

    Returns:
        A guarded wrapt wrapper: instrumentation failures never change what ``connect`` returns
        or raises.
    """
    def connect_wrapper(wrapped, instance, args, kwargs):
        if is_suppressed():
            return wrapped(*args, **kwargs)
        try:
            meta = params_meta(args, kwargs)
        except Exception:  # noqa: BLE001 - an odd argument shape must not cost the trace
            log_once('%s.params' % driver, 'Could not read %s connection parameters.', driver)
            meta = {}
        recorder = _recorder()
        if should_trace(recorder):
            sql = build_sql_meta(**{k: meta.get(k) for k in _SQL_KEYS})

            def set_sql(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack):
                subsegment.set_sql(sql)
                if exception is not None:
                    subsegment.add_exception(exception, stack)

            conn = _recording.record_sync(recorder, wrapped, instance, args, kwargs, 'connect', 'remote', set_sql)
        else:
            conn = wrapped(*args, **kwargs)
        if isinstance(conn, XRayTracedConn):
            return conn
        try:
            meta = conn_meta(conn, meta)
        except Exception:  # noqa: BLE001
            log_once('%s.conn' % driver, 'Could not read %s connection details.', driver)
        return conn_class(conn, meta)

    connect_wrapper.__qualname__ = '%s.connect' % driver
    return guard(connect_wrapper)
