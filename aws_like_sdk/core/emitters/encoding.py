"""Turn entity documents into datagram payloads that always fit the UDP limit.

A document larger than the limit is split: each subsegment subtree becomes an independent
subsegment document (it already carries ``trace_id``, ``parent_id`` and ``type``), recursively, and
the parent is sent without them. A single entity still too large on its own is shrunk, with a
visible marker, rather than dropped (upstream loses such segments: issues #351, #201, #309).
"""
import json
import logging
import math
from typing import Any, Dict, List

from ..utils.conversion import metadata_to_dict

log = logging.getLogger(__name__)

PROTOCOL_HEADER = '{"format":"json","version":1}'
PROTOCOL_DELIMITER = '\n'
HEADER_BYTES = (PROTOCOL_HEADER + PROTOCOL_DELIMITER).encode('ascii')
_HEADER_LENGTH = len(HEADER_BYTES)
# The IPv4 UDP payload limit is 65,507 bytes and the X-Ray service accepts 64 KB per document;
# staying under 60 KiB leaves headroom for both.
MAX_DATAGRAM_BYTES = 60 * 1024
TRUNCATED_KEY = 'aws_like_sdk_truncated'

try:  # orjson is optional and used automatically when installed.
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

_json_encoder = json.JSONEncoder(separators=(',', ':'), default=str, allow_nan=False)

try:
    # JSONEncoder.encode() builds a new C encoder on every call, which costs as much as encoding a
    # small document; build it once. No circular-reference markers: a cycle raises RecursionError and
    # falls back to the defensive path in encode_document().
    from _json import make_encoder as _c_make_encoder
    _c_encoder = _c_make_encoder(None, str, json.encoder.encode_basestring_ascii, None, ':', ',',
                                 False, False, False)
except (ImportError, TypeError):  # pragma: no cover - non-CPython or a changed signature
    _c_encoder = None


def _encode_stdlib(doc: Any) -> bytes:
    if _c_encoder is not None:
        return ''.join(_c_encoder(doc, 0)).encode('utf-8')
    return _json_encoder.encode(doc).encode('utf-8')


if _orjson is not None:
    _ORJSON_OPTIONS = _orjson.OPT_NON_STR_KEYS
    _orjson_dumps = _orjson.dumps
    # orjson itself, with no arguments: keyword arguments cost it more than a small document's
    # encoding does (measured: 8.1 k instructions with ``default=str``, 7.7 k without, 9.0 k through
    # a partial). A document it cannot encode as is (a value of an unknown type, a non-str key) raises,
    # and the tolerant encoder retries with ``default=str`` and non-str keys allowed.
    _encode_fast = _orjson_dumps
else:
    _orjson_dumps = None
    _encode_fast = _encode_stdlib


def _finite(value: Any) -> Any:
    # NaN and infinities are not JSON; the backend would reject the whole document.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def encode_document(doc: Dict[str, Any]) -> bytes:
    """Encode a document as compact UTF-8 JSON; never raises for odd values (cycles, NaN, surrogates)."""
    try:
        return _encode_fast(doc)
    except Exception:  # noqa: BLE001 - fall back to the paths below
        return _encode_tolerant(doc)


def _encode_tolerant(doc: Dict[str, Any]) -> bytes:
    # For what the fast encoder refused: unknown types become str, non-str keys are allowed, and the
    # stdlib path replaces NaN, cycles and surrogates.
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(doc, default=str, option=_ORJSON_OPTIONS)
        except Exception:  # noqa: BLE001
            pass
    try:
        return json.dumps(_finite(metadata_to_dict(doc)), separators=(',', ':'), default=str) \
            .encode('utf-8', errors='replace')
    except Exception as exc:  # noqa: BLE001
        log.warning('Could not encode entity %r: %s', doc.get('name'), exc)
        return json.dumps({k: doc.get(k) for k in ('id', 'name', 'trace_id', 'start_time', 'end_time',
                                                  'parent_id', 'type', 'namespace', 'in_progress')
                           if doc.get(k) is not None}, default=str).encode('utf-8', errors='replace')


def _shrink(doc: Dict[str, Any], encoded_size: int, limit: int) -> bytes:
    """Drop the bulkiest optional fields of one entity until it fits, leaving a marker."""
    removed = []
    for field in ('metadata', 'sql', 'cause', 'annotations', 'http', 'aws'):
        if field not in doc:
            continue
        value = doc.pop(field)
        removed.append(field)
        if field == 'metadata':
            doc['metadata'] = {'default': {TRUNCATED_KEY: 'metadata of %d bytes removed' % encoded_size}}
        elif field == 'cause' and isinstance(value, dict) and value.get('exceptions'):
            # Keep exception ids, types and messages: outer entities may refer to them by id.
            doc['cause'] = {'working_directory': value.get('working_directory'), 'exceptions': [
                {'id': e.get('id'), 'type': e.get('type'), 'message': str(e.get('message', ''))[:256],
                 'truncated': len(e.get('stack') or ())} for e in value['exceptions'][:10]]}
        data = encode_document(doc)
        if len(data) + len(HEADER_BYTES) <= limit:
            break
    else:
        data = encode_document(doc)
    meta = doc.setdefault('metadata', {}).setdefault('default', {})
    meta[TRUNCATED_KEY] = 'entity exceeded the UDP datagram limit (%d bytes); removed: %s' % (
        encoded_size, ', '.join(removed))
    if isinstance(doc.get('name'), str) and len(doc['name']) > 200:
        doc['name'] = doc['name'][:200]
    log.warning('Entity %r was %d bytes, over the %d byte datagram limit; removed %s.',
                doc.get('name'), encoded_size, limit, ', '.join(removed) or 'nothing')
    return encode_document(doc)


def _split(doc: Dict[str, Any], limit: int, out: List[bytes]) -> None:
    data = encode_document(doc)
    if len(data) + len(HEADER_BYTES) <= limit:
        out.append(HEADER_BYTES + data)
        return
    children = doc.pop('subsegments', None)
    if children:
        parent_id = doc.get('id')
        trace_id = doc.get('trace_id')
        for child in children:
            child = dict(child)
            child['parent_id'] = parent_id
            child.setdefault('trace_id', trace_id)
            child['type'] = 'subsegment'
            _split(child, limit, out)
        data = encode_document(doc)
        if len(data) + len(HEADER_BYTES) <= limit:
            out.append(HEADER_BYTES + data)
            return
    out.append(HEADER_BYTES + _shrink(doc, len(data), limit))


def to_datagrams(doc: Dict[str, Any], limit: int = MAX_DATAGRAM_BYTES) -> List[bytes]:
    """Return one or more ``header\\nbody`` payloads, each at most ``limit`` bytes, covering ``doc``.

    ``doc`` itself is never changed: splitting and shrinking work on copies.
    """
    try:
        data = _encode_fast(doc)
    except Exception:  # noqa: BLE001 - the defensive path copes with anything
        data = _encode_tolerant(doc)
    if len(data) + _HEADER_LENGTH <= limit:
        return [HEADER_BYTES + data]
    out: List[bytes] = []
    # _split pops the subsegments and _shrink the bulky fields: of a copy (children are copied as split).
    _split(dict(doc), limit, out)
    return out
