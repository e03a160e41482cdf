"""Trace psycopg2 by wrapping ``psycopg2.connect``.

psycopg2's C functions that take a connection or cursor as "scope" (``register_type``,
``quote_ident``, ``sql.Composable.as_string``, ...) check its exact type, so they are wrapped to
hand the driver the real object behind a traced proxy.
"""
import logging
from typing import Any, Dict, List, Tuple

from .._dbdriver import make_url, text, traced_connect
from .._patching import guard, is_wrapped, unwrap, wrap
from ..dbapi2 import XRayTracedConn, XRayTracedCursor

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

_DRIVER_VERSION = 'Psycopg 2'


def _params_meta(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    import psycopg2.extensions
    dsn = args[0] if args else kwargs.get('dsn')
    params: Dict[str, Any] = dict(psycopg2.extensions.parse_dsn(dsn)) if dsn else {}
    for key, value in kwargs.items():
        if key not in ('dsn', 'connection_factory', 'cursor_factory', 'async', 'async_') and value is not None:
            params['dbname' if key == 'database' else key] = value
    return _meta_from(params)


def _meta_from(params: Dict[str, Any]) -> Dict[str, Any]:
    user = params.get('user')
    return {'database_type': 'PostgreSQL', 'driver_version': _DRIVER_VERSION, 'user': user,
            'url': make_url('postgresql', user, params.get('host'), params.get('port'), params.get('dbname'))}


def _conn_meta(conn: Any, meta: Dict[str, Any]) -> Dict[str, Any]:
    refined = dict(meta)
    refined.update({k: v for k, v in _meta_from(conn.get_dsn_parameters()).items() if v})
    version = getattr(conn, 'server_version', None)
    if version:
        refined['database_version'] = text(version)
    return refined


def _unwrap_proxy(value: Any) -> Any:
    return value.__wrapped__ if isinstance(value, (XRayTracedConn, XRayTracedCursor)) else value


@guard
def _pass_real_objects(wrapped, instance, args, kwargs):
    args = tuple(_unwrap_proxy(a) for a in args)
    kwargs = {k: _unwrap_proxy(v) for k, v in kwargs.items()}
    return wrapped(*args, **kwargs)


def _scope_sites() -> List[Tuple[Any, str]]:
    import psycopg2._json
    import psycopg2._psycopg
    import psycopg2.extensions
    import psycopg2.sql
    sites = [(psycopg2.extensions, 'register_type'), (psycopg2._psycopg, 'register_type'),
             (psycopg2._json, 'register_type'), (psycopg2.extensions, 'quote_ident')]
    for name in ('Composed', 'SQL', 'Identifier', 'Literal', 'Placeholder'):
        cls = getattr(psycopg2.sql, name, None)
        if cls is not None and 'as_string' in vars(cls):
            sites.append((cls, 'as_string'))
    return [(owner, attr) for owner, attr in sites if hasattr(owner, attr)]


def patch() -> None:
    """Wrap ``psycopg2.connect`` and the scope-taking C functions; idempotent."""
    import psycopg2
    if is_wrapped(psycopg2, 'connect'):
        return
    wrap(psycopg2, 'connect', traced_connect('psycopg2', _params_meta, _conn_meta))
    for owner, attr in _scope_sites():
        if not is_wrapped(owner, attr):
            wrap(owner, attr, _pass_real_objects)


def unpatch() -> None:
    """Restore what :func:`patch` wrapped."""
    import psycopg2
    from ...core.patcher import _PATCHED_MODULES
    unwrap(psycopg2, 'connect')
    for owner, attr in _scope_sites():
        unwrap(owner, attr)
    _PATCHED_MODULES.discard('psycopg2')
