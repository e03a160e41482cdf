"""What the botocore (and aiobotocore) patches share: the trace header injection, the ``aws`` block of an
AWS subsegment, and the parameter whitelist.

The whitelist (``resources/aws_para_whitelist.json``) is generated from botocore's public service models by
``scripts/gen_aws_para_whitelist.py``; it names, per service and operation, the request and response
parameters that may be copied (snake_cased) into the ``aws`` block. Values of maps and the items of lists
are never copied: maps give their keys and lists their length. It is loaded on first use.
"""
import datetime
import json
import logging
import pkgutil
import threading
from typing import Any, Dict, Mapping, Optional

from ..core import xray_recorder
from ..core.models import http
from ..core.suppression import is_suppressed
from . import _outgoing
from ._patching import guard
from .util import to_snake_case

log = logging.getLogger(__name__)

__all__ = ['inject_header', 'aws_meta_processor', 'whitelist']

_WHITELIST_RESOURCE = 'resources/aws_para_whitelist.json'
_whitelist: Optional[Dict[str, Any]] = None
_whitelist_lock = threading.Lock()


def load_whitelist() -> Dict[str, Any]:
    """Return the parameter whitelist, reading the packaged data file once."""
    global _whitelist
    if _whitelist is None:
        with _whitelist_lock:
            if _whitelist is None:
                data = pkgutil.get_data(__package__, _WHITELIST_RESOURCE)
                _whitelist = json.loads(data.decode('utf-8')) if data else {'services': {}}
    return _whitelist


def __getattr__(name: str) -> Any:
    # ``whitelist`` stays importable under its upstream name without reading the file at import.
    if name == 'whitelist':
        return load_whitelist()
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


@guard
def inject_header(wrapped, instance, args, kwargs):
    """Wrapper for ``Endpoint.prepare_request``: add ``X-Amzn-Trace-Id`` naming the current AWS
    subsegment as the parent of the service's own trace."""
    if not is_suppressed():
        request = args[0] if args else kwargs.get('request')
        entity = xray_recorder.context.peek_trace_entity()
        headers = getattr(request, 'headers', None)
        if entity is not None and headers is not None:
            _outgoing.set_trace_header(headers, entity)
    return wrapped(*args, **kwargs)


def aws_meta_processor(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack,
                       throttle_check=None) -> None:
    """Fill the ``aws`` block and the status of the subsegment of one AWS call.

    Records ``operation``, ``region``, ``request_id``, ``id_2`` (S3's ``x-amz-id-2``), ``retries`` (when
    the call was retried) and the whitelisted parameters of the request and response. A ``ClientError``
    adds its status and the exception with ``remote: true``: the service, not this process, failed.
    """
    operation = args[0] if args else kwargs.get('operation_name')
    api_params = args[1] if len(args) > 1 else kwargs.get('api_params') or {}
    meta = getattr(instance, 'meta', None)
    aws_meta: Dict[str, Any] = {'operation': operation}
    region = getattr(meta, 'region_name', None)
    if region:
        aws_meta['region'] = region
    response: Any = return_value
    if exception is not None:
        error_response = getattr(exception, 'response', None)
        remote = isinstance(error_response, Mapping) and _is_client_error(exception)
        response = error_response if isinstance(error_response, Mapping) else None
        subsegment.add_exception(exception, stack, remote=remote)
    if isinstance(response, Mapping):
        metadata = response.get('ResponseMetadata')
        if metadata is None and exception is not None:
            metadata = _cause_metadata(exception)
        _record_response_metadata(subsegment, aws_meta, metadata)
    service = _service_key(meta)
    if service:
        _record_params(aws_meta, service, operation, api_params, response if exception is None else None)
    subsegment.set_aws(aws_meta)


def _is_client_error(exception: BaseException) -> bool:
    try:
        from botocore.exceptions import ClientError
    except ImportError:  # pragma: no cover - only reachable through aiobotocore without botocore
        return False
    return isinstance(exception, ClientError)


def _cause_metadata(exception: BaseException) -> Any:
    # Wrappers such as PynamoDB's VerboseClientError keep only the ``Error`` part of the response
    # and chain the original ClientError, whose response still has the request id and status.
    cause = getattr(exception, '__cause__', None)
    response = getattr(cause, 'response', None)
    return response.get('ResponseMetadata') if isinstance(response, Mapping) else None


def _service_key(meta: Any) -> Optional[str]:
    model = getattr(meta, 'service_model', None)
    return getattr(model, 'endpoint_prefix', None)


def _record_response_metadata(subsegment: Any, aws_meta: Dict[str, Any], response_meta: Any) -> None:
    if not isinstance(response_meta, Mapping):
        return
    status = response_meta.get('HTTPStatusCode')
    if status is not None:
        subsegment.put_http_meta(http.STATUS, status)
    request_id = response_meta.get('RequestId')
    if request_id:
        aws_meta['request_id'] = request_id
    headers = response_meta.get('HTTPHeaders') or {}
    id_2 = response_meta.get('HostId') or headers.get('x-amz-id-2')
    if id_2:
        aws_meta['id_2'] = id_2
    retries = response_meta.get('RetryAttempts')
    if retries:
        aws_meta['retries'] = retries


def _record_params(aws_meta: Dict[str, Any], service: str, operation: Any, request: Any, response: Any) -> None:
    rules = load_whitelist().get('services', {}).get(service, {}).get('operations', {}).get(operation)
    if not rules:
        return
    if isinstance(request, Mapping):
        _copy(aws_meta, request, rules.get('request_parameters', ()), rules.get('request_descriptors', {}))
    if isinstance(response, Mapping):
        _copy(aws_meta, response, rules.get('response_parameters', ()), rules.get('response_descriptors', {}))


def _copy(aws_meta: Dict[str, Any], source: Mapping, parameters, descriptors: Mapping) -> None:
    for name in parameters:
        if name in source:
            value = _jsonable(source[name])
            if value is not None:
                aws_meta[to_snake_case(name)] = value
    for name, descriptor in descriptors.items():
        if name not in source:
            continue
        value = source[name]
        if descriptor.get('list') and descriptor.get('get_count'):
            value = len(value) if hasattr(value, '__len__') else None
        elif descriptor.get('map') and descriptor.get('get_keys'):
            value = [str(key) for key in value] if isinstance(value, Mapping) else None
        else:
            value = _jsonable(value)
        if value is not None:
            aws_meta[descriptor.get('rename_to') or to_snake_case(name)] = value


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data; None for what cannot be recorded (bytes, streams)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)) or hasattr(value, 'read'):
        return None
    return str(value)
