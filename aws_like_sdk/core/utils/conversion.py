"""Turn arbitrary metadata values into JSON-friendly structures, safely.

Unlike upstream, conversion detects reference cycles and bounds depth, so a self-referencing
object becomes a visible marker instead of a RecursionError (upstream issues #298, #303).
"""
import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

MAX_DEPTH = 32
CYCLE_MARKER = '<cycle>'
DEPTH_MARKER = '<max depth reached>'

_SCALARS = (str, int, float, bool, type(None))


def _convert(obj: Any, active: set, depth: int) -> Any:
    if isinstance(obj, _SCALARS):
        return obj
    if depth > MAX_DEPTH:
        return DEPTH_MARKER
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode('utf-8', errors='backslashreplace')
    if inspect.isclass(obj):
        return str(obj)
    key = id(obj)
    if key in active:
        return CYCLE_MARKER
    active.add(key)
    try:
        if isinstance(obj, dict):
            return {k if isinstance(k, str) else str(k): _convert(v, active, depth + 1) for k, v in obj.items()}
        ast = getattr(obj, '_ast', None)
        if callable(ast) and not inspect.isclass(obj):
            return _convert(ast(), active, depth + 1)
        if isinstance(obj, (list, tuple, set, frozenset)) or (hasattr(obj, '__iter__') and not hasattr(obj, '__dict__')):
            return [_convert(item, active, depth + 1) for item in obj]
        attrs = getattr(obj, '__dict__', None)
        if isinstance(attrs, dict):
            return {name: _convert(value, active, depth + 1) for name, value in attrs.items()
                    if not name.startswith('_') and not callable(value)}
        if hasattr(obj, '__iter__'):
            return [_convert(item, active, depth + 1) for item in obj]
        return obj
    finally:
        active.discard(key)


def metadata_to_dict(obj: Any) -> Any:
    """Convert ``obj`` recursively into dicts, lists and scalars.

    Dicts are converted item by item, classes become their ``str``, objects with ``_ast()`` are
    converted through it, other iterables (sets, tuples, generators) become lists, objects with a
    ``__dict__`` become their public, non-callable attributes, bytes are decoded. Any failure yields
    ``{}`` with a warning; this function never raises.
    """
    try:
        return _convert(obj, set(), 0)
    except Exception as exc:  # noqa: BLE001 - metadata must never break the host application
        log.warning('Failed to convert metadata of type %s to a dict: %s', type(obj).__name__, exc)
        return {}
