"""ORM-level tracing: sessions and queries whose public method calls become ``remote`` subsegments.

Use ``XRaySessionMaker`` where you would use ``sessionmaker``; its sessions are ``XRaySession`` and
their legacy queries ``XRayQuery``. SQLAlchemy's own classes are left unmodified.
"""
import logging
from typing import Any, Optional

from sqlalchemy.orm.query import Query
from sqlalchemy.orm.session import Session, sessionmaker

from .util.decorators import decorate_all_functions, xray_on_call

__all__ = ['XRaySession', 'XRayQuery', 'XRaySessionMaker']

log = logging.getLogger(__name__)


@decorate_all_functions(xray_on_call)
class XRaySession(Session):
    """A ``Session`` whose public method calls (``execute``, ``commit``, ``scalars``, ...) are traced."""


@decorate_all_functions(xray_on_call)
class XRayQuery(Query):
    """A legacy ``Query`` whose public method calls are traced, with the query text per ``stream_sql``."""


class XRaySessionMaker(sessionmaker):
    """``sessionmaker`` producing :class:`XRaySession` objects that build :class:`XRayQuery` queries.

    Args:
        bind: the Engine or Connection new sessions use.
        class_: the session class (default :class:`XRaySession`).
        autoflush: passed to the sessions.
        autocommit: accepted for compatibility; SQLAlchemy 2 has no autocommit mode, so a true value is
            ignored with a warning.
        expire_on_commit: passed to the sessions.
        info: the sessions' ``info`` dictionary.
        **kw: other ``Session`` arguments; ``query_cls`` defaults to :class:`XRayQuery`.
    """

    def __init__(self, bind: Any = None, class_: type = XRaySession, autoflush: bool = True,
                 autocommit: bool = False, expire_on_commit: bool = True, info: Optional[dict] = None,
                 **kw: Any) -> None:
        if autocommit:
            log.warning('autocommit=True is not supported by SQLAlchemy 2 sessions; ignoring it.')
        kw.setdefault('query_cls', XRayQuery)
        super().__init__(bind, class_=class_, autoflush=autoflush, expire_on_commit=expire_on_commit, info=info,
                         **kw)
