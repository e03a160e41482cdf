"""Flask middleware: one segment per request, built through the shared request helper.

The middleware wraps three of the application's own methods (the request path, the unhandled-error
path and the request teardown) and listens to Flask's public template signals. It keeps the handle
of the segment it began on the WSGI environ of the request it began it for, so it always ends that
segment, never "whatever is current".
"""
import logging
import sys
from contextvars import ContextVar
from typing import Any, Callable, List, Optional, Tuple

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
_XRAY_HEADER = http.XRAY_HEADER
_XRAY_HEADER_LOWER = _XRAY_HEADER.lower()

# Open template subsegments of this thread or task, innermost last, as (template, subsegment) pairs.
# A tuple in a ContextVar: concurrent requests never see each other's templates.
_open_templates: ContextVar[Tuple[Tuple[Any, Any], ...]] = ContextVar('aws_like_sdk_flask_templates', default=())

# The real request object behind ``flask.request``, in one call (each attribute read through the
# proxy costs as much as this whole lookup).
_current_request = request._get_current_object


class _RequestState:
    """What one request's wrappers share: the segment handle and the response outcome."""

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

    The segment spans ``full_dispatch_request`` (``before_request`` hooks, the view, ``after_request``
    hooks) up to the request teardown: it begins before any ``before_request`` hook, so one that
    returns early is traced too, and it reads the response after every ``after_request`` hook. The
    application's methods are wrapped on the instance (not request hooks): a Flask hook costs more per
    request than the rest of the middleware's own work.
    """

    def __init__(self, app: flask.Flask, recorder: Any) -> None:
        self.app = app
        self._recorder = recorder
        if app.extensions.get(_EXTENSION_KEY) is not None:
            log.warning('XRayMiddleware is already installed on %r; not installing it twice.', app.name)
            return
        app.extensions[_EXTENSION_KEY] = self
        self._dispatch: Callable[[], flask.Response] = app.full_dispatch_request
        self._handle_exception: Callable[[Exception], flask.Response] = app.handle_exception
        self._teardown: Callable[..., None] = app.do_teardown_request
        app.full_dispatch_request = self._traced_dispatch  # type: ignore[method-assign]
        app.handle_exception = self._traced_handle_exception  # type: ignore[method-assign]
        app.do_teardown_request = self._traced_teardown  # type: ignore[method-assign]
        # Strong references: the middleware object is usually not kept by the application.
        before_render_template.connect(self._before_render, app, weak=False)
        template_rendered.connect(self._template_rendered, app, weak=False)

    # -- the request path ----------------------------------------------------------------------
    def _traced_dispatch(self) -> flask.Response:
        state = None
        try:
            req = _current_request()
            environ = req.environ
            if _ENVIRON_KEY not in environ:
                # (When the key is there, the same environ is dispatched again, e.g. by an app that
                # calls its own wsgi_app: it keeps one segment.) The WSGI environ is read directly:
                # werkzeug's ``base_url`` IRI decoding alone costs more than building the segment.
                incoming = incoming_request(environ)
                rule = req.url_rule
                if rule is not None:
                    incoming.route = rule.rule
                state = environ[_ENVIRON_KEY] = _RequestState(begin_request(self._recorder, incoming))
        except Exception:  # noqa: BLE001 - the request must proceed even if tracing cannot start
            log_once('flask.before_request', 'Could not trace a Flask request; it proceeds untraced.')
        response = self._dispatch()
        if state is not None:
            _record_response(state, response)
        return response

    def _traced_handle_exception(self, e: Exception) -> flask.Response:
        # Only for an exception that escaped full_dispatch_request: Flask answers with its 500
        # response (after running the after_request hooks on it), or re-raises it when propagating.
        response = self._handle_exception(e)
        try:
            state = _current_request().environ.get(_ENVIRON_KEY)
        except Exception:  # noqa: BLE001
            state = None
        if state is not None:
            _record_response(state, response)
        return response

    def _traced_teardown(self, *args: Any) -> None:
        # Flask passes the exception that escaped the request (after should_ignore_error), if any.
        exception = args[0] if args else sys.exc_info()[1]
        try:
            self._teardown(*args)
        finally:
            self._end_request(exception)

    def _end_request(self, exception: Optional[BaseException]) -> None:
        try:
            state = _current_request().environ.pop(_ENVIRON_KEY, None)
        except Exception:  # noqa: BLE001 - no request bound: nothing of ours to end
            return
        if state is None:
            return
        if _open_templates.get():
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


def _record_response(state: _RequestState, response: Any) -> None:
    """Note the final response's status and length, and stamp it with the trace header."""
    try:
        state.status = response.status_code
        headers = response.headers
        # One pass over the (few) headers instead of a lookup and a replacing set, each a scan.
        content_length = None
        present = False
        for key, value in headers:
            lowered = key.lower()
            if lowered == 'content-length':
                if content_length is None:
                    content_length = value
            elif lowered == _XRAY_HEADER_LOWER:
                present = True
        state.content_length = content_length
        value = state.handle.response_header()
        if value:
            if present:
                headers[_XRAY_HEADER] = value
            else:
                headers.add(_XRAY_HEADER, value)
    except Exception:  # noqa: BLE001
        log_once('flask.after_request', 'Could not record the Flask response on its segment.')
