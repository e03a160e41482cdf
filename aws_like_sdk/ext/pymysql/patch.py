"""Trace PyMySQL by wrapping ``pymysql.connect``."""
import logging
from typing import Any, Dict, Tuple

from .._dbdriver import make_url, text, traced_connect
from .._patching import is_wrapped, unwrap, wrap

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

_DRIVER_VERSION = 'PyMySQL'


def _params_meta(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    user = text(kwargs.get('user'))
    host = kwargs.get('host') or ('localhost' if not kwargs.get('unix_socket') else None)
    database = text(kwargs.get('database') or kwargs.get('db'))
    return {'database_type': 'MySQL', 'driver_version': _DRIVER_VERSION, 'user': user,
            'url': make_url('mysql', user, host, kwargs.get('port') or 3306, database)}


def _conn_meta(conn: Any, meta: Dict[str, Any]) -> Dict[str, Any]:
    refined = dict(meta)
    user = text(getattr(conn, 'user', None))
    if user:
        refined['user'] = user
    refined['url'] = make_url('mysql', refined.get('user'), getattr(conn, 'host', None),
                              getattr(conn, 'port', None), text(getattr(conn, 'db', None))) or refined.get('url')
    version = text(getattr(conn, 'server_version', None))
    if version:
        refined['database_version'] = version
    return refined


def patch() -> None:
    """Wrap ``pymysql.connect``; idempotent."""
    import pymysql
    if is_wrapped(pymysql, 'connect'):
        return
    wrap(pymysql, 'connect', traced_connect('pymysql', _params_meta, _conn_meta))


def unpatch() -> None:
    """Restore ``pymysql.connect``."""
    import pymysql
    from ...core.patcher import _PATCHED_MODULES
    unwrap(pymysql, 'connect')
    _PATCHED_MODULES.discard('pymysql')
