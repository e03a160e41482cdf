"""Trace pg8000 by wrapping ``pg8000.connect`` (the DB-API interface)."""
import logging
from typing import Any, Dict, Tuple

from .._dbdriver import make_url, text, traced_connect
from .._patching import is_wrapped, unwrap, wrap

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

_DRIVER_VERSION = 'Pg8000'
_POSITIONAL = ('user', 'host', 'database', 'port')


def _params_meta(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    params = dict(zip(_POSITIONAL, args))
    params.update({k: kwargs[k] for k in _POSITIONAL if k in kwargs})
    user = text(params.get('user'))
    host = params.get('host', 'localhost') if not kwargs.get('unix_sock') else None
    return {'database_type': 'PostgreSQL', 'driver_version': _DRIVER_VERSION, 'user': user,
            'url': make_url('postgresql', user, host, params.get('port', 5432), text(params.get('database')))}


def _conn_meta(conn: Any, meta: Dict[str, Any]) -> Dict[str, Any]:
    refined = dict(meta)
    version = getattr(conn, '_server_version', None) or (getattr(conn, 'parameter_statuses', None) or {}).get(
        'server_version')
    if version:
        refined['database_version'] = text(version)
    return refined


def patch() -> None:
    """Wrap ``pg8000.connect``; idempotent."""
    import pg8000
    if is_wrapped(pg8000, 'connect'):
        return
    wrap(pg8000, 'connect', traced_connect('pg8000', _params_meta, _conn_meta))


def unpatch() -> None:
    """Restore ``pg8000.connect``."""
    import pg8000
    from ...core.patcher import _PATCHED_MODULES
    unwrap(pg8000, 'connect')
    _PATCHED_MODULES.discard('pg8000')
