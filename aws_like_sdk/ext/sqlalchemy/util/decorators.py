"""Turn public ORM method calls into subsegments (the upstream helper names, without global patching).

:func:`decorate_all_functions` installs wrappers on the decorated subclass only: SQLAlchemy's own
``Session`` and ``Query`` classes are never modified, so only ``XRaySession``/``XRayQuery`` instances
are traced. A call made while another traced ORM call is running (``commit`` calling ``flush``,
``first`` calling ``limit``) does not open a second subsegment: one subsegment per call the
application made.
"""
import functools
import logging
import types
import weakref
from contextvars import ContextVar
from typing import Any, Callable, Dict, Optional

from sqlalchemy.orm import Query, Session

from ....core import xray_recorder
from ....core.suppression import is_suppressed
from ...util import strip_url
from ..._sql import build_sql_meta, query_for_trace

__all__ = ['decorate_all_functions', 'xray_on_call', 'parse_bind']

log = logging.getLogger(__name__)

_WRAPPED_MARK = '_aws_like_sdk_orm_wrapper'

# True while a traced ORM call runs in this thread or task; nested ORM calls are not traced again.
_in_call: ContextVar[bool] = ContextVar('aws_like_sdk_orm_call', default=False)
_bind_meta: 'weakref.WeakKeyDictionary[Any, Dict[str, Any]]' = weakref.WeakKeyDictionary()


def decorate_all_functions(function_decorator: Callable[[type, Callable], Callable]) -> Callable[[type], type]:
    """Class decorator: wrap every public function the class inherits from its direct bases.

    Args:
        function_decorator: called as ``function_decorator(base, function)`` for each public plain
            function defined by a direct base; its result is installed on the decorated class.

    Returns:
        A class decorator that modifies only the decorated class, never its bases.
    """
    def decorator(cls: type) -> type:
        for base in cls.__bases__:
            for name, obj in vars(base).items():
                if name.startswith('_') or name in cls.__dict__:
                    continue
                if not isinstance(obj, types.FunctionType) or getattr(obj, _WRAPPED_MARK, False):
                    continue
                setattr(cls, name, function_decorator(base, obj))
        return cls
    return decorator


def parse_bind(bind: Any) -> Optional[Dict[str, Any]]:
    """Build the ``sql`` block for an Engine or Connection: URL without password, user, database type.

    Args:
        bind: a SQLAlchemy ``Engine`` or ``Connection`` (anything with an ``engine`` or ``url``).

    Returns:
        ``{'url', 'user', 'database_type'}`` (empty fields left out), or None when ``bind`` has no URL.
    """
    engine = getattr(bind, 'engine', bind)
    try:
        cached = _bind_meta.get(engine)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return dict(cached)
    url = getattr(engine, 'url', None)
    if url is None:
        return None
    meta = build_sql_meta(database_type=url.drivername,
                          url=url.set(password=None).render_as_string(hide_password=False),
                          user=url.username, stream_sql=False)
    try:
        _bind_meta[engine] = meta
    except TypeError:
        pass
    return dict(meta)


def _session_bind(session: Any) -> Any:
    bind = getattr(session, 'bind', None)
    if bind is None:
        bind = session.get_bind()
    return bind


def _sql_for(instance: Any) -> Optional[Dict[str, Any]]:
    if isinstance(instance, Session):
        return parse_bind(_session_bind(instance))
    if isinstance(instance, Query):
        sql = parse_bind(_session_bind(instance.session))
        if sql is not None:
            text = query_for_trace(str(instance), xray_recorder.stream_sql)
            if text:
                sql['sanitized_query'] = text
        return sql
    return None


def xray_on_call(cls: type, func: Callable) -> Callable:
    """Wrap ``func`` (a public method defined on ``cls``) so each call is a ``remote`` subsegment.

    The subsegment is named after the database URL without password or query, carries the ``sql``
    block (with the sanitized query text for queries, per ``stream_sql``) and the annotation
    ``sqlalchemy = "<module of cls>.<function name>"``. Nothing is recorded without an open segment.

    Args:
        cls: the class that defines ``func`` (its module names the annotation).
        func: the function to wrap.

    Returns:
        The wrapper; it returns what ``func`` returns and raises what it raises.
    """
    annotation = '%s.%s' % (cls.__module__, func.__name__)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not args or _in_call.get() or is_suppressed():
            return func(*args, **kwargs)
        entity = xray_recorder.context.peek_trace_entity()
        if entity is None or not entity.sampled:
            return func(*args, **kwargs)
        token = _in_call.set(True)
        try:
            try:
                sql = _sql_for(args[0])
            except Exception:  # noqa: BLE001 - e.g. an unbound session: the call itself decides
                log.debug('No database URL for %s; not traced.', annotation, exc_info=True)
                sql = None
            if sql is None:
                return func(*args, **kwargs)

            def meta_processor(subsegment: Any, exception: Optional[BaseException], stack: Any,
                               **_outcome: Any) -> None:
                subsegment.set_sql(sql)
                subsegment.put_annotation('sqlalchemy', annotation)
                if exception is not None:
                    subsegment.add_exception(exception, stack)

            name = strip_url(sql.get('url')) or 'sqlalchemy'
            return xray_recorder.record_subsegment(func, args[0], args, kwargs, name, 'remote', meta_processor)
        finally:
            _in_call.reset(token)

    setattr(wrapper, _WRAPPED_MARK, True)
    return wrapper
