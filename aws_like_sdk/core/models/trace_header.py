"""Tolerant parsing and serialisation of the ``X-Amzn-Trace-Id`` header."""
import logging
import re
import time
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

ROOT = 'Root'
PARENT = 'Parent'
SAMPLE = 'Sampled'
SELF = 'Self'
HEADER_DELIMITER = ';'

_ROOT_RE = re.compile(r'\A1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}\Z')
_SAMPLED_STRINGS = {'1': 1, '0': 0, '?': '?'}
_PARENT_RE = re.compile(r'\A[0-9a-fA-F]{16}\Z')

# Headers come from clients: a malformed one is logged at WARNING at most once a minute per kind of
# fault (then at DEBUG), showing at most this many characters of it, so no client can flood the log.
WARNING_INTERVAL_SECONDS = 60.0
_SHOWN_CHARACTERS = 100
_warned_at: Dict[str, float] = {}


def _warn(kind: str, message: str, text: str) -> None:
    shown = repr(text[:_SHOWN_CHARACTERS])
    if len(text) > _SHOWN_CHARACTERS:
        shown += '... (%d characters)' % len(text)
    now = time.monotonic()
    last = _warned_at.get(kind)
    if last is None or now - last >= WARNING_INTERVAL_SECONDS:
        _warned_at[kind] = now
        log.warning(message + ' (more of these within a minute are logged at DEBUG)', shown)
    else:
        log.debug(message, shown)


def _normalize_sampled(value: Any):
    if isinstance(value, bool) or type(value) is int:
        return {True: 1, False: 0}.get(value) if isinstance(value, bool) else (value if value in (0, 1) else None)
    return _SAMPLED_STRINGS.get(value)


class TraceHeader:
    """The parsed form of ``X-Amzn-Trace-Id``.

    ``sampled`` is 1, 0, ``'?'`` (the caller asks us to decide) or None; ``data`` keeps any other
    keys (such as ``Lineage``) in the order seen, for propagation.
    """

    # root, parent and sampled are plain attributes, not read-only properties: they are read for
    # every traced request, and an attribute read costs no call.
    __slots__ = ('root', 'parent', 'sampled', '_data')

    def __init__(self, root: Optional[str] = None, parent: Optional[str] = None, sampled: Any = None,
                 data: Optional[Dict[str, str]] = None) -> None:
        self.root = root
        self.parent = parent
        if sampled is None:
            self.sampled = None
        elif sampled.__class__ is str:
            self.sampled = _SAMPLED_STRINGS.get(sampled)
        else:
            self.sampled = _normalize_sampled(sampled)
        # Created on first use: most headers carry no extra fields.
        self._data = dict(data) if data else None

    @classmethod
    def from_header_str(cls, header: Optional[str]) -> 'TraceHeader':
        """Parse a header value; malformed input yields an empty header and a warning, never an exception.

        Whitespace around pairs and empty pairs are tolerated, values may contain ``=``, ``Self`` is
        dropped, and a ``Root``/``Parent`` that is not a valid id is discarded (so the request starts a
        fresh trace instead of emitting documents the backend would reject).
        """
        if not header:
            return cls()
        if not isinstance(header, str):
            try:
                header = header.decode('latin-1') if isinstance(header, (bytes, bytearray)) else str(header)
            except Exception:  # noqa: BLE001
                return cls()
        root = parent = sampled = None
        data: Dict[str, str] = {}
        malformed = False
        for part in header.split(HEADER_DELIMITER):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition('=')
            key = key.strip()
            value = value.strip()
            if not sep or not key:
                malformed = True
                continue
            if key == ROOT:
                root = value
            elif key == PARENT:
                parent = value
            elif key == SAMPLE:
                sampled = value
            elif key == SELF:
                continue
            else:
                data[key] = value
        if root is not None and not _ROOT_RE.match(root):
            _warn(ROOT, 'Ignoring malformed Root %s in tracing header.', root)
            root = parent = None
        if parent is not None and not _PARENT_RE.match(parent):
            _warn(PARENT, 'Ignoring malformed Parent %s in tracing header.', parent)
            parent = None
        if sampled is not None and sampled not in _SAMPLED_STRINGS:
            _warn(SAMPLE, 'Ignoring Sampled=%s in tracing header (expected 1, 0 or ?); sampling rules decide.',
                  sampled)
        if malformed:
            _warn('parts', 'Skipped malformed parts of tracing header %s.', header)
        if root is not None:
            root = root.lower()
        if parent is not None:
            parent = parent.lower()
        return cls(root=root, parent=parent, sampled=sampled, data=data)

    def to_header_str(self) -> str:
        """Serialise as ``Root=..;Parent=..;Sampled=..`` followed by data keys; absent fields are omitted."""
        parts = []
        if self.root:
            parts.append('Root=' + self.root)
        if self.parent:
            parts.append('Parent=' + self.parent)
        if self.sampled is not None:
            parts.append('Sampled=%s' % self.sampled)
        for key, value in (self._data or {}).items():
            parts.append('%s=%s' % (key, value))
        return HEADER_DELIMITER.join(parts)

    @property
    def data(self) -> Dict[str, str]:
        data = self._data
        if data is None:
            data = self._data = {}
        return data

    def __repr__(self) -> str:
        return 'TraceHeader(%r)' % self.to_header_str()


#: Stands for "the request carried no trace header" on the request path, where building an empty
#: header per request would be wasted work. It is only ever read; ``Entity.get_origin_trace_header``
#: hands out a fresh empty header in its place.
NO_TRACE_HEADER = TraceHeader()
