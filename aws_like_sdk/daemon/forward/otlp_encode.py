"""Encode OTLP ExportTraceServiceRequest messages as protobuf or OTLP/JSON, without dependencies.

The protobuf writer covers just the field types the trace messages use (varint,
fixed64, double and length-delimited); field numbers follow opentelemetry-proto's
``trace/v1/trace.proto``, ``common/v1/common.proto`` and ``resource/v1/resource.proto``.
"""
import json
import struct
from typing import Any, List, Tuple

from .otlp_convert import SCOPE_NAME, Attribute, Event, Span

Resources = List[Tuple[List[Attribute], List[Span]]]


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are sent as 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(payload)) + payload


def _string_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode('utf-8', 'replace')) if text else b''


def _fixed64_field(number: int, value: int) -> bytes:
    return _tag(number, 1) + struct.pack('<Q', value & ((1 << 64) - 1))


def _varint_field(number: int, value: int) -> bytes:
    return _tag(number, 0) + _varint(value) if value else b''


def _any_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return _tag(2, 0) + _varint(int(value))
    if isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
        return _tag(3, 0) + _varint(value)
    if isinstance(value, float):
        return _tag(4, 1) + struct.pack('<d', value)
    return _bytes_field(1, str(value).encode('utf-8', 'replace'))


def _key_value(key: str, value: Any) -> bytes:
    return _string_field(1, key) + _bytes_field(2, _any_value(value))


def _attributes(number: int, attributes: List[Attribute]) -> bytes:
    return b''.join(_bytes_field(number, _key_value(k, v)) for k, v in attributes)


def _event(event: Event) -> bytes:
    return _fixed64_field(1, event.time) + _string_field(2, event.name) + _attributes(3, event.attributes)


def _span(span: Span) -> bytes:
    status = _string_field(2, span.status_message) + _varint_field(3, span.status_code)
    return b''.join((
        _bytes_field(1, span.trace_id),
        _bytes_field(2, span.span_id),
        _bytes_field(4, span.parent_span_id) if span.parent_span_id else b'',
        _string_field(5, span.name),
        _varint_field(6, span.kind),
        _fixed64_field(7, span.start),
        _fixed64_field(8, span.end),
        _attributes(9, span.attributes),
        b''.join(_bytes_field(11, _event(e)) for e in span.events),
        _bytes_field(15, status) if status else b'',
    ))


def encode_protobuf(resources: Resources) -> bytes:
    """Serialise an ExportTraceServiceRequest (``application/x-protobuf``)."""
    scope = _string_field(1, SCOPE_NAME)
    out = []
    for resource_attributes, spans in resources:
        resource = _attributes(1, resource_attributes)
        scope_spans = _bytes_field(1, scope) + b''.join(_bytes_field(2, _span(s)) for s in spans)
        out.append(_bytes_field(1, _bytes_field(1, resource) + _bytes_field(2, scope_spans)))
    return b''.join(out)


def _json_value(value: Any) -> dict:
    if isinstance(value, bool):
        return {'boolValue': value}
    if isinstance(value, int):
        return {'intValue': str(value)}  # int64 is a string in OTLP/JSON
    if isinstance(value, float):
        return {'doubleValue': value}
    return {'stringValue': str(value)}


def _json_attributes(attributes: List[Attribute]) -> list:
    return [{'key': k, 'value': _json_value(v)} for k, v in attributes]


def _json_span(span: Span) -> dict:
    out = {
        'traceId': span.trace_id.hex(), 'spanId': span.span_id.hex(), 'name': span.name,
        'kind': span.kind, 'startTimeUnixNano': str(span.start), 'endTimeUnixNano': str(span.end),
        'attributes': _json_attributes(span.attributes),
        'events': [{'timeUnixNano': str(e.time), 'name': e.name, 'attributes': _json_attributes(e.attributes)}
                   for e in span.events],
        'status': {'code': span.status_code, 'message': span.status_message},
    }
    if span.parent_span_id:
        out['parentSpanId'] = span.parent_span_id.hex()
    return out


def encode_json(resources: Resources) -> bytes:
    """Serialise an ExportTraceServiceRequest in the OTLP/JSON mapping (``application/json``)."""
    return json.dumps({'resourceSpans': [
        {'resource': {'attributes': _json_attributes(attrs)},
         'scopeSpans': [{'scope': {'name': SCOPE_NAME}, 'spans': [_json_span(s) for s in spans]}]}
        for attrs, spans in resources]}, separators=(',', ':')).encode('utf-8')
