"""Helpers shared by middlewares and patches, under their upstream names."""
import re
from typing import Any, Mapping, MutableMapping, Optional
from urllib.parse import urlsplit

from ..core.models import http
from ..core.models.trace_header import TraceHeader
from ._patching import unwrap  # noqa: F401 - re-exported for upstream compatibility

UNKNOWN_HOSTNAME = 'UNKNOWN HOST'

_FIRST_CAP = re.compile('(.)([A-Z][a-z]+)')
_ALL_CAP = re.compile('([a-z0-9])([A-Z])')


def _owning_segment(entity: Any) -> Any:
    return entity.parent_segment if getattr(entity, 'type', None) == 'subsegment' else entity


def inject_trace_header(headers: Optional[MutableMapping[str, str]], entity: Any) -> None:
    """Write ``X-Amzn-Trace-Id`` for a downstream call made under ``entity``.

    The header carries the entity's trace id, its id as ``Parent``, the sampling decision and any
    extra fields of the incoming header (e.g. ``Lineage``).
    """
    if headers is None or entity is None:
        return
    origin = _owning_segment(entity).get_origin_trace_header()
    data = origin.data if origin is not None else None
    header = TraceHeader(root=entity.trace_id, parent=entity.id, sampled=1 if entity.sampled else 0, data=data)
    headers[http.XRAY_HEADER] = header.to_header_str()


def calculate_sampling_decision(trace_header: TraceHeader, recorder: Any, sampling_req: Mapping[str, Any]) -> Any:
    """Incoming ``Sampled=1/0`` wins; else sample everything when recorder sampling is off; else ask the sampler."""
    sampled = trace_header.sampled if trace_header is not None else None
    if sampled is not None and sampled != '?':
        return sampled
    if not recorder.sampling:
        return 1
    decision = recorder.sampler.should_trace(sampling_req)
    return decision if decision else 0


def construct_xray_header(headers: Mapping[str, Any]) -> TraceHeader:
    """Parse the trace header from request headers (``X-Amzn-Trace-Id`` or Django's META name)."""
    if not headers:
        return TraceHeader()
    value = headers.get(http.XRAY_HEADER) or headers.get(http.ALT_XRAY_HEADER) or \
        headers.get(http.XRAY_HEADER.lower())
    return TraceHeader.from_header_str(value)


def calculate_segment_name(host_name: Optional[str], recorder: Any) -> Optional[str]:
    """The segment name: dynamic naming on ``host_name`` when configured, else the service name."""
    if recorder.dynamic_naming:
        return recorder.dynamic_naming.get_name(host_name)
    return recorder.service


def prepare_response_header(origin_header: Optional[TraceHeader], segment: Any) -> str:
    """The response ``X-Amzn-Trace-Id``: the root, plus our decision when the caller sent ``Sampled=?``."""
    root = segment.trace_id
    if not root:
        return ''
    # What TraceHeader(root=..., sampled=...).to_header_str() writes, without building one per request.
    if origin_header is not None and origin_header.sampled == '?':
        return 'Root=%s;Sampled=%d' % (root, 1 if segment.sampled else 0)
    return 'Root=' + root


def to_snake_case(name: str) -> str:
    """``TableName`` -> ``table_name``."""
    return _ALL_CAP.sub(r'\1_\2', _FIRST_CAP.sub(r'\1_\2', name)).lower()


def strip_url(url: Optional[str]) -> Optional[str]:
    """Drop the query string and fragment of ``url``."""
    if not url:
        return url
    return url.partition('?')[0].partition('#')[0]


def get_hostname(url: Optional[str]) -> str:
    """Host name of ``url``, or ``UNKNOWN HOST`` when it has none or cannot be parsed."""
    if not url:
        return UNKNOWN_HOSTNAME
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return UNKNOWN_HOSTNAME
    return host or UNKNOWN_HOSTNAME
