"""One ``aws`` subsegment per aiobotocore API call (aioboto3 clients and resources included).

The asynchronous twin of :mod:`aws_like_sdk.ext.botocore.patch`, recording exactly the same thing:

* ``AioBaseClient._make_api_call`` is awaited inside a subsegment named by the service's endpoint
  prefix, filled by :func:`~aws_like_sdk.ext.boto_utils.aws_meta_processor` (operation, region, request
  id, retries, whitelisted parameters; a ``ClientError`` as a remote exception, re-raised unchanged).
* ``AioEndpoint.prepare_request`` (inherited from botocore's ``Endpoint``) adds ``X-Amzn-Trace-Id`` with
  :func:`~aws_like_sdk.ext.boto_utils.inject_header`, before the ``before-send`` event, as in botocore.
* ``AioEndpoint._send`` runs inside ``suppress_tracing()``: whichever HTTP session sends the request
  (aiohttp with its trace configs, httpx, a custom one) adds no second subsegment under the AWS one.
* X-Ray's own ``GetSamplingRules``, ``GetSamplingTargets`` and ``PutTraceSegments`` are never traced.
"""
import logging

from ...core import xray_recorder
from ...core.suppression import is_suppressed, suppress_tracing
from .. import _outgoing
from .._patching import CallSites, guard_async
from ..boto_utils import aws_meta_processor, inject_header
from ..botocore.patch import AWS_NAMESPACE, XRAY_OWN_OPERATIONS, _service_name

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

def patch() -> None:
    """Trace every aiobotocore client call. Idempotent."""
    _SITES.patch()


def unpatch() -> None:
    """Undo :func:`patch`. Idempotent."""
    _SITES.unpatch()


@guard_async
async def _traced_make_api_call(wrapped, instance, args, kwargs):
    if is_suppressed():
        return await wrapped(*args, **kwargs)
    service = _service_name(instance)
    operation = args[0] if args else kwargs.get('operation_name')
    if service == 'xray' and operation in XRAY_OWN_OPERATIONS:
        with suppress_tracing():
            return await wrapped(*args, **kwargs)
    recorder = xray_recorder
    if _outgoing.parent_entity(recorder) is None:
        return await wrapped(*args, **kwargs)
    return await recorder.record_subsegment_async(wrapped, instance, args, kwargs, name=service,
                                                  namespace=AWS_NAMESPACE, meta_processor=aws_meta_processor)


@guard_async
async def _send_quietly(wrapped, instance, args, kwargs):
    # The AWS subsegment already describes this HTTP request; the session below must not add another.
    with suppress_tracing():
        return await wrapped(*args, **kwargs)


_SITES = CallSites(('aiobotocore.client', 'AioBaseClient._make_api_call', _traced_make_api_call),
                   # Inherited from botocore's Endpoint: CallSites removes it again on unpatch.
                   ('aiobotocore.endpoint', 'AioEndpoint.prepare_request', inject_header),
                   ('aiobotocore.endpoint', 'AioEndpoint._send', _send_quietly))
