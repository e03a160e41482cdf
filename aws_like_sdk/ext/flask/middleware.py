"""Flask middleware: one segment per request, built through the shared request helper.

The middleware registers request hooks and listens to Flask's public template signals. It keeps the
handle of the segment it began on the WSGI environ of the request it began it for, so it always ends
that segment, never "whatever is current".
"""
import logging
from contextvars import ContextVar
from typing import Any, List, Optional, Tuple

import flask
from flask import before_render_template, request, template_rendered

from ...core.models import http
from .._http import RequestTrace, begin_request, innermost_frames
from .._patching import log_once
from ..wsgi.middleware import incoming_request

__all__ = ['XRayMiddleware']

log = logging.getLogger(__name__)

_ENVIRON_KEY = 'aws_like_sdk.flask.request'
_EXTENSION_KEY = 'aws_like_sdk'

# Open template subsegments of this thread or task, innermost last, as (template, subsegment) pairs.
# A tuple in a ContextVar: concurrent requests never see each other's templates.
_open_templates: ContextVar[Tuple[Tuple[Any, Any], ...]] = ContextVar('aws_like_sdk_flask_templates', default=())


class _RequestState:
    """What the hooks of one request share: the segment handle and the response outcome."""

    __slots__ = ('handle', 'status', 'content_length')

    def __init__(self, handle: RequestTrace) -> None:
        self.handle = handle
        self.status: Optional[int] = None
        self.content_length: Optional[str] = None


class XRayMiddleware:
    """Trace every request of a Flask app as a segment, and its template renders as subsegments.

    Args:
        app: the Flask application.
        recorder: the recorder to use, normally ``aws_like_sdk.core.xray_recorder``.

    The segment carries the ``http`` block (URL without query string, method, user agent, client IP,
    status, content length), the ``http_route`` annotation (``request.url_rule.rule``), 4xx error /
    429 throttle / 5xx fault flags, and any exception that reached teardown, with its stack. The
    response gets an ``X-Amzn-Trace-Id`` header. Applying the middleware twice to one app is a no-op.
    """

    def __init__(self, app: flask.Flask, recorder: Any) -> None:
        self.app = app
        self._recorder = recorder
        if app.extensions.get(_EXTENSION_KEY) is not None:
            log.warning('XRayMiddleware is already installed on %r; not installing it twice.', app.name)
            return
        app.extensions[_EXTENSION_KEY] = self
        # First among before_request hooks: a hook that returns early would otherwise skip the segment.
        app.before_request_funcs.setdefault(None, []).insert(0, self._before_request)
        # after_request hooks run in reverse registration order; first in the list means it runs last
        # and sees (and stamps) the final response.
        app.after_request_funcs.setdefault(None, []).insert(0, self._after_request)
        app.teardown_request(self._teardown_request)
        # Strong references: the middleware object is usually not kept by the application.
        before_render_template.connect(self._before_render, app, weak=False)
        template_rendered.connect(self._template_rendered, app, weak=False)

    # -- request hooks -------------------------------------------------------------------------
    def _before_request(self) -> None:
        try:
            environ = request.environ
            if _ENVIRON_KEY in environ:
                # The same environ dispatched again (an app calling its own wsgi_app) keeps one segment.
                return
            # Read the WSGI environ directly: werkzeug's ``base_url`` IRI decoding alone costs more
            # than building the whole segment.
            incoming = incoming_request(environ)
            rule = request.url_rule
            if rule is not None:
                incoming.route = rule.rule
            environ[_ENVIRON_KEY] = _RequestState(begin_request(self._recorder, incoming))
        except Exception:  # noqa: BLE001 - the request must proceed even if tracing cannot start
            log_once('flask.before_request', 'Could not trace a Flask request; it proceeds untraced.')

    def _after_request(self, response: flask.Response) -> flask.Response:
        state = request.environ.get(_ENVIRON_KEY)
        if state is None:
            return response
        try:
            state.status = response.status_code
            state.content_length = response.headers.get('Content-Length')
            value = state.handle.response_header()
            if value:
                response.headers[http.XRAY_HEADER] = value
        except Exception:  # noqa: BLE001
            log_once('flask.after_request', 'Could not record the Flask response on its segment.')
        return response

    def _teardown_request(self, exception: Optional[BaseException] = None) -> None:
        state = request.environ.pop(_ENVIRON_KEY, None)
        if state is None:
            return
        try:
            self._close_templates(exception)
        except Exception:  # noqa: BLE001
            log_once('flask.templates', 'Could not close template subsegments.')
        status = state.status
        if exception is not None and (status is None or status < 500):
            status = 500
        state.handle.finish(status=status, content_length=state.content_length, exception=exception)

    # -- templates -----------------------------------------------------------------------------
    def _before_render(self, sender: Any, template: Any = None, context: Any = None, **extra: Any) -> None:
        try:
            entity = self._recorder.context.peek_trace_entity()
            if entity is None or not entity.sampled:
                return
            name = getattr(template, 'name', None) or 'template_render'
            subsegment = self._recorder.begin_subsegment(name, 'local')
            if subsegment is not None:
                _open_templates.set(_open_templates.get() + ((template, subsegment),))
        except Exception:  # noqa: BLE001
            log_once('flask.before_render', 'Could not begin a template subsegment.')

    def _template_rendered(self, sender: Any, template: Any = None, context: Any = None, **extra: Any) -> None:
        try:
            stack = _open_templates.get()
            for index in range(len(stack) - 1, -1, -1):
                if stack[index][0] is template:
                    _open_templates.set(stack[:index])
                    # Inner renders that never reported completion raised; they end with this one.
                    self._end_all(stack[index:], None)
                    return
        except Exception:  # noqa: BLE001
            log_once('flask.template_rendered', 'Could not end a template subsegment.')

    def _close_templates(self, exception: Optional[BaseException]) -> None:
        stack = _open_templates.get()
        if stack:
            _open_templates.set(())
            self._end_all(stack, exception)

    def _end_all(self, pairs: Tuple[Tuple[Any, Any], ...], exception: Optional[BaseException]) -> None:
        # A render whose completion signal never came raised; end innermost first so the stack unwinds.
        leaked: List[Any] = [subsegment for _template, subsegment in reversed(pairs)]
        for position, subsegment in enumerate(leaked):
            if not subsegment.in_progress:
                continue
            if exception is not None and position == 0:
                subsegment.add_exception(exception, innermost_frames(exception, self._recorder.max_trace_back))
            self._recorder.end_subsegment_by_handle(subsegment)
