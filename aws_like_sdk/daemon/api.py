"""The JSON API behind the viewer and ``aws-like-sdk traces``: plain functions over the store."""
from typing import Any, Dict, Mapping, Optional

from .assemble import assemble
from .servicemap import ServiceMap
from .store import Store, TraceFilter

MAX_LIMIT = 1000


class BadRequest(ValueError):
    """A query parameter the API cannot use (answered with HTTP 400)."""


def _number(params: Mapping[str, str], name: str) -> Optional[float]:
    text = (params.get(name) or '').strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadRequest('%s must be a number' % name) from None


def trace_filter(params: Mapping[str, str]) -> TraceFilter:
    """Build a :class:`TraceFilter` from query parameters.

    Parameters: ``service``, ``status`` (``500`` or ``5xx``), ``flag`` (``error``,
    ``fault``, ``throttle``, ``ok``), ``annotation`` (``key=value``), ``min_duration``
    (milliseconds), ``limit``, ``after_seq``.
    """
    min_ms = _number(params, 'min_duration')
    limit = _number(params, 'limit')
    after = _number(params, 'after_seq')
    flag = (params.get('flag') or '').strip() or None
    if flag and flag.lower() not in ('error', 'fault', 'throttle', 'ok'):
        raise BadRequest('flag must be error, fault, throttle or ok')
    status = (params.get('status') or '').strip() or None
    if status and not (status.isdigit() or (len(status) == 3 and status[0].isdigit()
                                            and status[1:].lower() == 'xx')):
        raise BadRequest('status must be a number like 500 or a class like 5xx')
    return TraceFilter(service=(params.get('service') or '').strip() or None, status=status, flag=flag,
                       annotation=(params.get('annotation') or '').strip() or None,
                       min_duration=min_ms / 1000.0 if min_ms is not None else None,
                       after_seq=int(after) if after is not None else None,
                       limit=int(min(max(limit or 100, 1), MAX_LIMIT)))


def list_traces(store: Store, params: Mapping[str, str]) -> Dict[str, Any]:
    """``{"traces": [...], "last_seq": N}`` for the filters in ``params``."""
    return {'traces': store.list_traces(trace_filter(params)), 'last_seq': store.last_seq()}


def get_trace(store: Store, trace_id: str) -> Optional[Dict[str, Any]]:
    """``{"summary": {...}, "roots": [...]}`` for one trace, or None when unknown."""
    summary = store.get_summary(trace_id)
    if summary is None:
        return None
    return {'summary': summary, 'roots': assemble(store.get_documents(trace_id))}


def service_map(store: Store, params: Mapping[str, str]) -> Dict[str, Any]:
    """The service map over the newest ``limit`` traces (default 500)."""
    limit = int(min(max(_number(params, 'limit') or 500, 1), 5000))
    graph = ServiceMap()
    trace_ids = store.recent_trace_ids(limit)
    for trace_id in trace_ids:
        graph.add_trace(assemble(store.get_documents(trace_id)))
    result = graph.to_dict()
    result['traces'] = len(trace_ids)
    return result
