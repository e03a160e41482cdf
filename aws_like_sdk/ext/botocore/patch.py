"""One ``aws`` subsegment per botocore API call (boto3 clients and resources included).

* ``BaseClient._make_api_call`` runs inside a subsegment named by the service's endpoint prefix (``s3``,
  ``dynamodb``, ``sqs``...); retries happen inside it and are counted in ``aws.retries``.
* ``Endpoint.prepare_request`` adds ``X-Amzn-Trace-Id`` so the AWS service continues the trace.
* ``URLLib3Session.send`` runs inside ``suppress_tracing()``: a patched http.client adds no second
  subsegment under the AWS one.
* X-Ray's own ``GetSamplingRules``, ``GetSamplingTargets`` and ``PutTraceSegments`` are never traced.
"""
import logging

from ...core import xray_recorder
from ...core.suppression import is_suppressed, suppress_tracing
from .. import _outgoing
from .._patching import CallSites, guard
from ..boto_utils import aws_meta_processor, inject_header

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch']

AWS_NAMESPACE = 'aws'
XRAY_OWN_OPERATIONS = frozenset(('GetSamplingRules', 'GetSamplingTargets', 'PutTraceSegments'))

def patch() -> None:
    """Trace every botocore client call. Idempotent."""
    _SITES.patch()


def unpatch() -> None:
    """Undo :func:`patch`. Idempotent."""
    _SITES.unpatch()


def _service_name(client) -> str:
    return client.meta.service_model.endpoint_prefix


@guard
def _traced_make_api_call(wrapped, instance, args, kwargs):
    if is_suppressed():
        return wrapped(*args, **kwargs)
    service = _service_name(instance)
    operation = args[0] if args else kwargs.get('operation_name')
    if service == 'xray' and operation in XRAY_OWN_OPERATIONS:
        with suppress_tracing():
            return wrapped(*args, **kwargs)
    recorder = xray_recorder
    if _outgoing.parent_entity(recorder) is None:
        return wrapped(*args, **kwargs)
    return recorder.record_subsegment(wrapped, instance, args, kwargs, name=service, namespace=AWS_NAMESPACE,
                                      meta_processor=aws_meta_processor)


@guard
def _send_quietly(wrapped, instance, args, kwargs):
    # The AWS subsegment already describes this HTTP request; the layers below must not add another.
    with suppress_tracing():
        return wrapped(*args, **kwargs)


_SITES = CallSites(('botocore.client', 'BaseClient._make_api_call', _traced_make_api_call),
                   ('botocore.endpoint', 'Endpoint.prepare_request', inject_header),
                   ('botocore.httpsession', 'URLLib3Session.send', _send_quietly))
