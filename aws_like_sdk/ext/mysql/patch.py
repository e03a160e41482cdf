"""Trace mysql-connector-python by wrapping ``mysql.connector.connect``.

As upstream, subsegments are named after the server host.
"""
import logging
from typing import Any, Dict, Tuple

from .._dbdriver import make_url, text, traced_connect
from .._patching import is_wrapped, unwrap, wrap

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

_DRIVER_VERSION = 'MySQL-Connector'


def _params_meta(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    user = text(kwargs.get('user') or kwargs.get('username'))
    host = kwargs.get('host') or '127.0.0.1'
    database = text(kwargs.get('database') or kwargs.get('db'))
    return {'name': host, 'database_type': 'MySQL', 'driver_version': _DRIVER_VERSION, 'user': user,
            'url': make_url('mysql', user, host, kwargs.get('port') or 3306, database)}


def _conn_meta(conn: Any, meta: Dict[str, Any]) -> Dict[str, Any]:
    refined = dict(meta)
    host = getattr(conn, '_host', None) or getattr(conn, 'server_host', None)
    if host:
        refined['name'] = host
    user = text(getattr(conn, '_user', None) or getattr(conn, 'user', None))
    if user:
        refined['user'] = user
    try:
        version = conn.get_server_info()
    except Exception:  # noqa: BLE001 - pooled and closed connections may not answer
        version = None
    if version:
        refined['database_version'] = text(version)
    return refined


def patch() -> None:
    """Wrap ``mysql.connector.connect``; idempotent."""
    import mysql.connector
    if is_wrapped(mysql.connector, 'connect'):
        return
    wrap(mysql.connector, 'connect', traced_connect('mysql', _params_meta, _conn_meta))


def unpatch() -> None:
    """Restore ``mysql.connector.connect``."""
    import mysql.connector
    from ...core.patcher import _PATCHED_MODULES
    unwrap(mysql.connector, 'connect')
    _PATCHED_MODULES.discard('mysql')
