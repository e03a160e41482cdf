"""Trace psycopg (version 3) by wrapping ``psycopg.connect`` (synchronous connections)."""
import logging
from typing import Any, Dict, Tuple

from .._dbdriver import make_url, text, traced_connect
from .._patching import is_wrapped, unwrap, wrap
from ..dbapi2 import XRayTracedConn

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'XRayTracedPsycopgConn']

_DRIVER_VERSION = 'Psycopg 3'


class XRayTracedPsycopgConn(XRayTracedConn):
    """A traced psycopg connection, including its ``execute`` shortcut."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Like ``psycopg.Connection.execute``: a new traced cursor runs the statement."""
        binary = kwargs.pop('binary', None)
        cursor = self.cursor(binary=True) if binary else self.cursor()
        return cursor.execute(*args, **kwargs)


def _params_meta(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict
    conninfo = args[0] if args else kwargs.get('conninfo', '')
    extra = {k: v for k, v in kwargs.items()
             if k not in ('conninfo', 'autocommit', 'prepare_threshold', 'context', 'row_factory',
                          'cursor_factory') and v is not None}
    return _meta_from(conninfo_to_dict(conninfo or '', **extra))


def _meta_from(params: Dict[str, Any]) -> Dict[str, Any]:
    user = params.get('user')
    database = params.get('dbname') or params.get('database')
    return {'database_type': 'PostgreSQL', 'driver_version': _DRIVER_VERSION, 'user': user,
            'url': make_url('postgresql', user, params.get('host'), params.get('port'), database)}


def _conn_meta(conn: Any, meta: Dict[str, Any]) -> Dict[str, Any]:
    refined = dict(meta)
    info = conn.info
    refined.update({k: v for k, v in _meta_from(info.get_parameters()).items() if v})
    if getattr(info, 'server_version', None):
        refined['database_version'] = text(info.server_version)
    return refined


def patch() -> None:
    """Wrap ``psycopg.connect``; idempotent."""
    import psycopg
    if is_wrapped(psycopg, 'connect'):
        return
    wrap(psycopg, 'connect', traced_connect('psycopg', _params_meta, _conn_meta, XRayTracedPsycopgConn))


def unpatch() -> None:
    """Restore ``psycopg.connect``."""
    import psycopg
    from ...core.patcher import _PATCHED_MODULES
    unwrap(psycopg, 'connect')
    _PATCHED_MODULES.discard('psycopg')
