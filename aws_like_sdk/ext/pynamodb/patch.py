"""One ``aws`` subsegment named ``dynamodb`` per PynamoDB operation.

PynamoDB funnels every DynamoDB operation through ``Connection._make_api_call(operation_name,
operation_kwargs)``. PynamoDB 6 hands it on to botocore's ``BaseClient._make_api_call``; older
releases signed and sent the HTTP request themselves, bypassing that method (and so the botocore
patch). Wrapping PynamoDB's own method covers both:

* the operation runs inside an ``aws`` subsegment filled by the botocore patch's
  :func:`~aws_like_sdk.ext.boto_utils.aws_meta_processor` (operation, region, request id, retries,
  whitelisted parameters such as ``table_name``), with the client as the instance;
* the layers below run inside ``suppress_tracing()``, so the botocore patch (which ``patch(['pynamodb'])``
  also applies) and http.client add no second subsegment;
* the ``X-Amzn-Trace-Id`` header naming that subsegment is added by a ``before-send`` handler
  registered on PynamoDB's botocore client, which old releases also emit.

A ``ClientError`` is recorded with ``remote: true`` (PynamoDB's ``VerboseClientError`` keeps only the
error part of the response; the request id and status come from the ClientError it chains), and
always reaches the application unchanged.
"""
import contextvars
import logging
import weakref
from typing import Any, Optional

from ...core import xray_recorder
from ...core.suppression import is_suppressed, suppress_tracing
from .. import _outgoing
from .._patching import CallSites, guard
from ..boto_utils import aws_meta_processor

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

SUBSEGMENT_NAME = 'dynamodb'
AWS_NAMESPACE = 'aws'
_HOOK_ID = 'aws_like_sdk.ext.pynamodb.trace_header'

# The subsegment of the PynamoDB operation running in this context, for the before-send handler.
_ACTIVE: contextvars.ContextVar[Any] = contextvars.ContextVar('aws_like_sdk_pynamodb_active', default=None)
# botocore clients that already carry the before-send handler (registered once per client).
_hooked: 'weakref.WeakSet[Any]' = weakref.WeakSet()


def patch() -> None:
    """Trace every PynamoDB operation. Idempotent."""
    _SITES.patch()


def unpatch() -> None:
    """Undo :func:`patch`. Idempotent; handlers already on clients stay but do nothing."""
    _SITES.unpatch()


def _client_of(connection: Any) -> Optional[Any]:
    try:
        return connection.client
    except Exception:  # noqa: BLE001 - e.g. no region: PynamoDB raises it itself, untraced
        log.debug('PynamoDB connection has no usable client; operation left untraced.', exc_info=True)
        return None


def _inject_header(request: Any = None, **_: Any) -> None:
    """botocore ``before-send`` handler: name the active PynamoDB subsegment as the service's parent."""
    subsegment = _ACTIVE.get()
    headers = getattr(request, 'headers', None)
    if subsegment is None or headers is None:
        return
    try:
        _outgoing.set_trace_header(headers, subsegment)
    except Exception:  # noqa: BLE001 - a handler error would fail the application's request
        log.debug('Could not add the trace header to a PynamoDB request.', exc_info=True)


def _hook(client: Any) -> None:
    if client in _hooked:
        return
    # unique_id makes botocore ignore a second registration (another thread may race us here).
    client.meta.events.register('before-send.dynamodb', _inject_header, unique_id=_HOOK_ID)
    _hooked.add(client)


@guard
def _traced_make_api_call(wrapped, instance, args, kwargs):
    if is_suppressed() or _outgoing.parent_entity(xray_recorder) is None:
        return wrapped(*args, **kwargs)
    client = _client_of(instance)
    if client is None:
        return wrapped(*args, **kwargs)
    _hook(client)

    def call(*call_args: Any, **call_kwargs: Any) -> Any:
        # record_subsegment has just begun the subsegment in this context, so it is the entity on
        # top; the before-send handler gets it through _ACTIVE, set only for this operation.
        token = _ACTIVE.set(xray_recorder.context.peek_trace_entity())
        try:
            with suppress_tracing():
                return wrapped(*call_args, **call_kwargs)
        finally:
            _ACTIVE.reset(token)

    return xray_recorder.record_subsegment(call, client, args, kwargs, name=SUBSEGMENT_NAME,
                                           namespace=AWS_NAMESPACE, meta_processor=aws_meta_processor)


_SITES = CallSites(('pynamodb.connection.base', 'Connection._make_api_call', _traced_make_api_call))
