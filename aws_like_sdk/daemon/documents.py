"""Parse segment documents and pull out what the store indexes.

The reference daemon forwards bodies unparsed and lets the X-Ray service validate them.
A local store must read them, so it checks the few fields it needs (SPEC Part C (c))
and keeps everything else verbatim.
"""
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

_TRACE_ID = re.compile(r'^1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}$')
_ENTITY_ID = re.compile(r'^[0-9a-fA-F]{16}$')
MAX_NAME = 200
MAX_ANNOTATION_VALUE = 1000


class InvalidDocument(ValueError):
    """A body the store cannot keep; ``reason`` names the counter it lands in."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Document:
    """One parsed segment or independent subsegment document."""

    raw: str
    body: Dict[str, Any]
    trace_id: str
    id: str
    parent_id: Optional[str]
    type: str
    name: str
    start_time: float
    end_time: Optional[float]
    in_progress: bool
    error: bool
    fault: bool
    throttle: bool
    annotations: List[Tuple[str, str]] = field(default_factory=list)


def parse_document(body: bytes) -> Document:
    """Parse and check one datagram body.

    Args:
        body: UTF-8 JSON bytes of one segment or independent subsegment.

    Returns:
        The parsed document.

    Raises:
        InvalidDocument: when the body is not a usable segment document.
    """
    try:
        text = body.decode('utf-8')
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidDocument('invalid_json', 'not JSON: %s' % exc) from None
    if not isinstance(data, dict):
        raise InvalidDocument('invalid_document', 'not a JSON object')
    trace_id = data.get('trace_id')
    entity_id = data.get('id')
    name = data.get('name')
    start = data.get('start_time')
    if not isinstance(trace_id, str) or not _TRACE_ID.match(trace_id):
        raise InvalidDocument('invalid_document', 'missing or malformed trace_id')
    if not isinstance(entity_id, str) or not _ENTITY_ID.match(entity_id):
        raise InvalidDocument('invalid_document', 'missing or malformed id')
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise InvalidDocument('invalid_document', 'missing or malformed name')
    if not _is_number(start) or start <= 0:
        raise InvalidDocument('invalid_document', 'missing or malformed start_time')
    end = data.get('end_time')
    in_progress = data.get('in_progress') is True
    if end is None and not in_progress:
        raise InvalidDocument('invalid_document', 'neither end_time nor in_progress')
    if end is not None and not _is_number(end):
        raise InvalidDocument('invalid_document', 'malformed end_time')
    parent_id = data.get('parent_id')
    if parent_id is not None and (not isinstance(parent_id, str) or not _ENTITY_ID.match(parent_id)):
        raise InvalidDocument('invalid_document', 'malformed parent_id')
    kind = 'subsegment' if data.get('type') == 'subsegment' else 'segment'
    if kind == 'subsegment' and parent_id is None:
        raise InvalidDocument('invalid_document', 'independent subsegment without parent_id')
    return Document(
        raw=text, body=data, trace_id=trace_id.lower(), id=entity_id.lower(),
        parent_id=parent_id.lower() if parent_id else None, type=kind, name=name,
        start_time=float(start), end_time=None if in_progress else float(end),
        in_progress=in_progress,
        error=data.get('error') is True, fault=data.get('fault') is True,
        throttle=data.get('throttle') is True,
        annotations=list(collect_annotations(data)),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def annotation_text(value: Any) -> Optional[str]:
    """The text an annotation value is matched by (``true``, ``42``, ``1.5``, ``abc``), or None."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value[:MAX_ANNOTATION_VALUE]
    return None


def iter_entities(entity: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """Yield ``entity`` and every embedded subsegment below it, depth first.

    Iterative on purpose: a hostile 64 KiB document can nest thousands of levels deep,
    which would exhaust Python's recursion limit.
    """
    stack = [entity]
    while stack:
        current = stack.pop()
        yield current
        children = current.get('subsegments')
        if isinstance(children, list):
            stack.extend(reversed([c for c in children if isinstance(c, dict)]))


def collect_annotations(entity: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    """Yield ``(key, text)`` for every valid annotation in the document tree."""
    for node in iter_entities(entity):
        annotations = node.get('annotations')
        if not isinstance(annotations, dict):
            continue
        for key, value in annotations.items():
            text = annotation_text(value)
            if text is not None and isinstance(key, str):
                yield key, text


def http_summary(entity: Dict[str, Any]) -> Tuple[Optional[str], Optional[str], Optional[int]]:
    """``(method, url, status)`` from an entity's ``http`` block, each None when absent."""
    http = entity.get('http')
    if not isinstance(http, dict):
        return None, None, None
    request = http.get('request') if isinstance(http.get('request'), dict) else {}
    response = http.get('response') if isinstance(http.get('response'), dict) else {}
    method = request.get('method')
    url = request.get('url')
    status = response.get('status')
    return (method if isinstance(method, str) else None,
            url if isinstance(url, str) else None,
            status if isinstance(status, int) and not isinstance(status, bool) else None)
