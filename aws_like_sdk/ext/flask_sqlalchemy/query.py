"""A drop-in ``SQLAlchemy`` extension object for Flask-SQLAlchemy 3 whose ORM calls are traced.

Built only on Flask-SQLAlchemy's public customisation points (``session_options['class_']`` and
``query_class``): nothing in Flask-SQLAlchemy or SQLAlchemy is modified.
"""
import logging
from typing import Any, Optional

from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.model import Model
from flask_sqlalchemy.query import Query as FlaskQuery
from flask_sqlalchemy.session import Session as FlaskSession

from ..sqlalchemy.query import XRayQuery, XRaySession
from ..sqlalchemy.util.decorators import decorate_all_functions, xray_on_call

__all__ = ['XRayBaseQuery', 'XRaySignallingSession', 'XRayFlaskSqlAlchemy']

log = logging.getLogger(__name__)


@decorate_all_functions(xray_on_call)
class XRayBaseQuery(FlaskQuery, XRayQuery):
    """Flask-SQLAlchemy's ``Query`` (``get_or_404``, ``paginate``, ...) with traced method calls."""


class XRaySignallingSession(FlaskSession, XRaySession):
    """Flask-SQLAlchemy's session (bind keys per model) with traced method calls.

    Args:
        db: the :class:`XRayFlaskSqlAlchemy` (or ``SQLAlchemy``) extension object.
        autocommit: accepted for compatibility; SQLAlchemy 2 has no autocommit mode.
        autoflush: passed to the session.
        **options: other ``Session`` arguments.
    """

    def __init__(self, db: Any, autocommit: bool = False, autoflush: bool = True, **options: Any) -> None:
        if autocommit:
            log.warning('autocommit=True is not supported by SQLAlchemy 2 sessions; ignoring it.')
        super().__init__(db, autoflush=autoflush, **options)


class XRayFlaskSqlAlchemy(SQLAlchemy):
    """``flask_sqlalchemy.SQLAlchemy`` whose sessions and queries are traced.

    Args:
        app: the Flask app, or None to call ``init_app`` later.
        use_native_unicode: accepted for compatibility with Flask-SQLAlchemy 2; ignored.
        session_options: session arguments; ``class_`` defaults to :class:`XRaySignallingSession`.
        metadata: a ``MetaData`` for the models.
        query_class: the query class (default :class:`XRayBaseQuery`).
        model_class: the declarative model base class.
        **kwargs: other Flask-SQLAlchemy 3 arguments (``engine_options``, ``disable_autonaming``, ...).
    """

    def __init__(self, app: Any = None, use_native_unicode: bool = True, session_options: Optional[dict] = None,
                 metadata: Any = None, query_class: type = XRayBaseQuery, model_class: Any = Model,
                 **kwargs: Any) -> None:
        options = dict(session_options or {})
        options.setdefault('class_', XRaySignallingSession)
        super().__init__(app, session_options=options, metadata=metadata, query_class=query_class,
                         model_class=model_class, **kwargs)
