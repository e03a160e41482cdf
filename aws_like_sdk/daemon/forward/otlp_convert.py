"""Convert X-Ray segment documents into OTLP spans (an encoding-neutral model).

Mapping, close to the OpenTelemetry Collector's awsxray receiver: every entity
(segment, embedded or independent subsegment) is one span with the X-Ray ids as span
ids; segments are SERVER spans, ``remote``/``aws`` subsegments CLIENT spans, the rest
INTERNAL; fault/error/throttle give status ERROR; exceptions become ``exception``
events; annotations become attributes; the segment name is ``service.name``.
"""
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

KIND_INTERNAL, KIND_SERVER, KIND_CLIENT = 1, 2, 3
STATUS_UNSET, STATUS_ERROR = 0, 2
SCOPE_NAME = 'aws_like_sdk.daemon'

Attribute = Tuple[str, Any]


@dataclass
class Event:
    """One span event."""

    time: int
    name: str
    attributes: List[Attribute] = field(default_factory=list)


@dataclass
class Span:
    """One span, ready for either OTLP encoding."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: int
    start: int
    end: int
    attributes: List[Attribute] = field(default_factory=list)
    events: List[Event] = field(default_factory=list)
    status_code: int = STATUS_UNSET
    status_message: str = ''


def otel_trace_id(xray_trace_id: str) -> bytes:
    """``1-5759e988-bd862e3fe1be46a994272793`` -> the 16 bytes of ``5759e988bd86...``."""
    return bytes.fromhex(xray_trace_id[2:10] + xray_trace_id[11:])


def _nanos(seconds: Any) -> int:
    return int(round(float(seconds) * 1e9))


def _put(attributes: List[Attribute], key: str, value: Any) -> None:
    if isinstance(value, (str, bool, int, float)) and value != '':
        attributes.append((key, value))


def _http_attributes(http: Any, attributes: List[Attribute]) -> None:
    if not isinstance(http, dict):
        return
    request = http.get('request') if isinstance(http.get('request'), dict) else {}
    response = http.get('response') if isinstance(http.get('response'), dict) else {}
    _put(attributes, 'http.request.method', request.get('method'))
    _put(attributes, 'url.full', request.get('url'))
    _put(attributes, 'user_agent.original', request.get('user_agent'))
    _put(attributes, 'client.address', request.get('client_ip'))
    status = response.get('status')
    if isinstance(status, int) and not isinstance(status, bool):
        attributes.append(('http.response.status_code', status))
    length = response.get('content_length')
    if isinstance(length, int) and not isinstance(length, bool):
        attributes.append(('http.response.body.size', length))


def _sql_attributes(sql: Any, attributes: List[Attribute]) -> None:
    if not isinstance(sql, dict):
        return
    if isinstance(sql.get('database_type'), str):
        attributes.append(('db.system', sql['database_type'].lower()))
    _put(attributes, 'db.query.text', sql.get('sanitized_query'))
    _put(attributes, 'db.user', sql.get('user'))
    _put(attributes, 'server.address', sql.get('url'))


def _aws_attributes(aws: Any, attributes: List[Attribute]) -> None:
    if not isinstance(aws, dict):
        return
    if isinstance(aws.get('operation'), str):
        attributes.append(('rpc.system', 'aws-api'))
        attributes.append(('rpc.method', aws['operation']))
    _put(attributes, 'cloud.region', aws.get('region'))
    _put(attributes, 'aws.request_id', aws.get('request_id'))


def _exception_events(cause: Any, end: int) -> Tuple[List[Event], str]:
    if not isinstance(cause, dict) or not isinstance(cause.get('exceptions'), list):
        return [], ''
    events, first_message = [], ''
    for exc in cause['exceptions']:
        if not isinstance(exc, dict):
            continue
        attributes: List[Attribute] = []
        _put(attributes, 'exception.type', exc.get('type'))
        _put(attributes, 'exception.message', exc.get('message'))
        stack = exc.get('stack')
        if isinstance(stack, list):
            lines = ['  at %s (%s:%s)' % (f.get('label', '?'), f.get('path', '?'), f.get('line', '?'))
                     for f in stack if isinstance(f, dict)]
            if lines:
                attributes.append(('exception.stacktrace', '\n'.join(lines)))
        events.append(Event(end, 'exception', attributes))
        if not first_message and isinstance(exc.get('message'), str):
            first_message = exc['message']
    return events, first_message


def _span(entity: Dict[str, Any], trace_id: bytes, parent: Optional[str], is_segment: bool) -> Span:
    start = _nanos(entity['start_time'])
    end = _nanos(entity['end_time'])
    namespace = entity.get('namespace')
    kind = KIND_SERVER if is_segment else (KIND_CLIENT if namespace in ('remote', 'aws') else KIND_INTERNAL)
    attributes: List[Attribute] = []
    annotations = entity.get('annotations')
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            _put(attributes, str(key), value)
    metadata = entity.get('metadata')
    if isinstance(metadata, dict):
        for namespace_name, values in metadata.items():
            attributes.append(('aws.xray.metadata.%s' % namespace_name, json.dumps(values, default=str)))
    _http_attributes(entity.get('http'), attributes)
    _sql_attributes(entity.get('sql'), attributes)
    _aws_attributes(entity.get('aws'), attributes)
    _put(attributes, 'enduser.id', entity.get('user'))
    if isinstance(namespace, str):
        attributes.append(('aws.xray.namespace', namespace))
    events, message = _exception_events(entity.get('cause'), end)
    failed = any(entity.get(flag) is True for flag in ('fault', 'error', 'throttle'))
    return Span(trace_id=trace_id, span_id=bytes.fromhex(entity['id']),
                parent_span_id=bytes.fromhex(parent) if parent else b'', name=entity['name'], kind=kind,
                start=start, end=max(start, end), attributes=attributes, events=events,
                status_code=STATUS_ERROR if failed else STATUS_UNSET, status_message=message if failed else '')


def _usable(entity: Dict[str, Any]) -> bool:
    try:
        bytes.fromhex(entity['id'])
        float(entity['start_time'])
        float(entity['end_time'])
        return isinstance(entity['name'], str) and len(entity['id']) == 16
    except (KeyError, TypeError, ValueError):
        return False  # in-progress or malformed: its completed copy arrives later


def document_to_spans(document: Dict[str, Any]) -> List[Span]:
    """All spans of one document (the entity and its embedded subsegments).

    In-progress entities are skipped: the completed document replaces them later, and a
    span cannot be sent without an end time.
    """
    trace_id = otel_trace_id(document['trace_id'])
    spans: List[Span] = []
    stack: List[Tuple[Dict[str, Any], Optional[str], bool]] = [
        (document, document.get('parent_id'), document.get('type') != 'subsegment')]
    while stack:
        entity, parent, is_segment = stack.pop()
        if not _usable(entity):
            continue
        spans.append(_span(entity, trace_id, parent, is_segment))
        children = entity.get('subsegments')
        if isinstance(children, list):
            stack.extend((child, entity['id'], False) for child in children if isinstance(child, dict))
    return spans


def group_by_service(items: List[Tuple[str, List[Span]]]) -> List[Tuple[List[Attribute], List[Span]]]:
    """Group ``(service name, spans)`` pairs into ``(resource attributes, spans)`` per service."""
    grouped: Dict[str, List[Span]] = {}
    for service, spans in items:
        grouped.setdefault(service, []).extend(spans)
    return [([('service.name', service), ('telemetry.sdk.name', 'aws_like_sdk')], spans)
            for service, spans in grouped.items()]
