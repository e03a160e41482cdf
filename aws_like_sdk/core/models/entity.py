"""Entity: what segments and subsegments share (ids, timing, http, annotations, metadata, cause)."""
import logging
import math
import os
import time
from typing import Any, Dict, Optional, Tuple

from ..emitters.encoding import encode_document
from ..exceptions.exceptions import AlreadyEndedException
from ..utils.conversion import metadata_to_dict
from ..utils.ids import entity_id as _entity_id
from . import http
from .throwable import Throwable
from .trace_header import NO_TRACE_HEADER, TraceHeader

log = logging.getLogger(__name__)

ORIGIN_TRACE_HEADER_ATTR_KEY = '_origin_trace_header'

# Characters the X-Ray backend rejects in names.
_NAME_STRIP_TABLE = str.maketrans('', '', '?;*()!$~^<>')
_ANNOTATION_KEY_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_')
_ANNOTATION_TYPES = (str, bool, int, float)
_REQUEST_KEYS = frozenset(http.request_keys)
_RESPONSE_KEYS = frozenset(http.response_keys)


_clean_names: Dict[str, str] = {}

_FAULT = ('fault',)
_THROTTLE = ('error', 'throttle')
_ERROR = ('error',)


def status_flags(status: int) -> Tuple[str, ...]:
    """The flags an int HTTP status sets: ``fault`` for 5xx, ``error`` and ``throttle`` for 429,
    ``error`` for other 4xx, none below 400."""
    if status >= 500:
        return _FAULT
    if status == 429:
        return _THROTTLE
    if status >= 400:
        return _ERROR
    return ()


def sanitize_name(name: Any) -> str:
    """Drop the characters the backend rejects, with a warning when something was removed."""
    cleaned = _clean_names.get(name) if isinstance(name, str) else None
    if cleaned is not None:
        return cleaned
    text = name if isinstance(name, str) else str(name)
    cleaned = text.translate(_NAME_STRIP_TABLE)
    if len(cleaned) != len(text):
        log.warning('Removed invalid characters from entity name %r.', text)
    elif isinstance(name, str):
        # Names repeat (one per code path); remember the clean ones, boundedly.
        if len(_clean_names) >= 4096:
            _clean_names.clear()
        _clean_names[name] = cleaned
    return cleaned


class Entity:
    """Base class of Segment and Subsegment. Mutators raise AlreadyEndedException once closed."""

    # Defaults shared by every entity until one sets its own value: most entities never change most
    # of these, and each attribute not written in __init__ is time saved on every captured call.
    parent_id: Optional[str] = None
    sampled = True
    in_progress = True
    end_time: Optional[float] = None
    error = False
    fault = False
    throttle = False
    _origin_trace_header = None
    # http, annotations, metadata, aws and cause are created on first use (see the properties
    # below); ``_has_blocks`` says whether any of them was ever touched, so to_dict skips all five
    # checks for the usual entity that carries none.
    _http: Optional[Dict[str, Dict[str, Any]]] = None
    _annotations: Optional[Dict[str, Any]] = None
    _metadata: Optional[Dict[str, Dict[str, Any]]] = None
    _aws: Optional[Dict[str, Any]] = None
    # True while ``_aws`` is a dict shared with other entities (see the ``aws`` property).
    _aws_shared = False
    _cause: Any = None
    _has_blocks = False
    # Child list, created with the first child (most subsegments are leaves).
    _subs: Optional[list] = None

    def __init__(self, name: str, entity_id: Optional[str] = None) -> None:
        self.id = entity_id or _entity_id()
        self.name = sanitize_name(name)
        self.start_time = time.time()
        self._subs = []

    @property
    def subsegments(self) -> list:
        """Child subsegments (a plain list, as upstream)."""
        subs = self._subs
        if subs is None:
            subs = self._subs = []
        return subs

    @subsegments.setter
    def subsegments(self, value: list) -> None:
        self._subs = value

    # -- lazily created blocks (plain dicts to callers, as upstream) -----------------------------
    @property
    def http(self) -> Dict[str, Dict[str, Any]]:
        if self._http is None:
            self._http = {}
            self._has_blocks = True
        return self._http

    @http.setter
    def http(self, value: Dict[str, Dict[str, Any]]) -> None:
        self._http = value
        self._has_blocks = True

    @property
    def annotations(self) -> Dict[str, Any]:
        if self._annotations is None:
            self._annotations = {}
            self._has_blocks = True
        return self._annotations

    @annotations.setter
    def annotations(self, value: Dict[str, Any]) -> None:
        self._annotations = value
        self._has_blocks = True

    @property
    def metadata(self) -> Dict[str, Dict[str, Any]]:
        if self._metadata is None:
            self._metadata = {}
            self._has_blocks = True
        return self._metadata

    @metadata.setter
    def metadata(self, value: Dict[str, Dict[str, Any]]) -> None:
        self._metadata = value
        self._has_blocks = True

    @property
    def aws(self) -> Dict[str, Any]:
        value = self._aws
        if value is None:
            value = self._aws = {}
            self._has_blocks = True
        elif self._aws_shared:
            # The recorder's block, shared by every segment until one is about to change it.
            value = self._aws = {key: dict(item) if isinstance(item, dict) else item for key, item in value.items()}
            self._aws_shared = False
        return value

    @aws.setter
    def aws(self, value: Dict[str, Any]) -> None:
        self._aws = value
        self._aws_shared = False
        self._has_blocks = True

    @property
    def cause(self) -> Any:
        if self._cause is None:
            self._cause = {}
            self._has_blocks = True
        return self._cause

    @cause.setter
    def cause(self, value: Any) -> None:
        self._cause = value
        self._has_blocks = True

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self, end_time: Optional[float] = None) -> None:
        """Close the entity, stamping ``end_time`` (now when not given)."""
        if not self.in_progress:
            self._check_ended()
        self.end_time = end_time if end_time is not None else time.time()
        self.in_progress = False

    def add_subsegment(self, subsegment) -> None:
        """Attach ``subsegment`` as a child of this entity."""
        if not self.in_progress:
            self._check_ended()
        subsegment.parent_id = self.id
        if not self.sampled and subsegment.sampled:
            log.warning('A sampled subsegment %r was added to an unsampled parent %r; it will be orphaned.',
                        subsegment.name, self.name)
        subs = self._subs
        if subs is None:
            self._subs = [subsegment]
        else:
            subs.append(subsegment)

    def remove_subsegment(self, subsegment) -> None:
        """Detach ``subsegment`` (used when it is streamed out on its own)."""
        try:
            (self._subs or []).remove(subsegment)
        except ValueError:
            log.debug('Subsegment %r is not a child of %r.', subsegment.name, self.name)

    # -- data ------------------------------------------------------------------------------------
    def put_http_meta(self, key: str, value: Any) -> None:
        """Record one ``http`` field; unknown keys are logged and ignored, None values skipped."""
        if not self.in_progress:
            self._check_ended()
        if value is None:
            return
        if key == http.STATUS:
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    log.warning('Ignoring non-integer HTTP status %r.', value)
                    return
            self.apply_status_code(value)
        if key in _REQUEST_KEYS:
            self.http.setdefault('request', {})[key] = value
        elif key in _RESPONSE_KEYS:
            self.http.setdefault('response', {})[key] = value
        else:
            log.warning('Ignoring unsupported key %r in http meta.', key)

    def put_annotation(self, key: str, value: Any) -> None:
        """Add an indexed annotation. Keys are letters, digits and ``_``; values str, number or bool."""
        if not self.in_progress:
            self._check_ended()
        if not isinstance(key, str) or not key or not _ANNOTATION_KEY_CHARS.issuperset(key):
            log.warning('Ignoring annotation with invalid key %r: use only letters, digits and underscore.', key)
            return
        if not isinstance(value, _ANNOTATION_TYPES):
            log.warning('Ignoring annotation %r: value of type %s is not str, number or bool.',
                        key, type(value).__name__)
            return
        if isinstance(value, float) and not math.isfinite(value):
            log.warning('Ignoring annotation %r: %r is not valid JSON.', key, value)
            return
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = 'default') -> None:
        """Add non-indexed metadata under ``namespace`` (``AWS.`` namespaces are reserved)."""
        if not self.in_progress:
            self._check_ended()
        if not isinstance(namespace, str):
            log.warning('Ignoring metadata %r: namespace %r is not a string.', key, namespace)
            return
        if namespace.startswith('AWS.'):
            log.warning('Ignoring metadata %r: namespace %r is reserved for AWS.', key, namespace)
            return
        if not isinstance(key, str):
            key = str(key)
        bucket = self.metadata.get(namespace)
        if bucket is None:
            self.metadata[namespace] = {key: value}
        else:
            bucket[key] = value

    def set_aws(self, aws_meta: Dict[str, Any]) -> None:
        """Replace the ``aws`` block."""
        if not self.in_progress:
            self._check_ended()
        self.aws = aws_meta

    def add_throttle_flag(self) -> None:
        self.throttle = True

    def add_fault_flag(self) -> None:
        self.fault = True

    def add_error_flag(self) -> None:
        self.error = True

    def apply_status_code(self, status_code: Any) -> None:
        """Set error (4xx), throttle+error (429) or fault (5xx) from an HTTP status."""
        if not self.in_progress:
            self._check_ended()
        if not isinstance(status_code, int) or isinstance(status_code, bool):
            return
        for flag in status_flags(status_code):
            setattr(self, flag, True)

    def add_exception(self, exception: BaseException, stack, remote: bool = False) -> None:
        """Record ``exception`` in ``cause`` and set ``fault``.

        An exception already recorded on another entity of the trace is referenced by its id.
        """
        if not self.in_progress:
            self._check_ended()
        self.fault = True
        cause_id = getattr(exception, '_cause_id', None) if getattr(exception, '_recorded', False) else None
        if cause_id:
            self.cause = cause_id
            return
        if not isinstance(self.cause, dict):
            log.warning('Replacing the exception id reference in cause with a new exception record.')
            self.cause = {}
        if not self.cause:
            self.cause['working_directory'] = os.getcwd()
            self.cause['exceptions'] = []
        self.cause.setdefault('exceptions', []).append(Throwable(exception, stack, remote))

    def save_origin_trace_header(self, trace_header) -> None:
        """Keep the incoming trace header so its extra data is propagated downstream."""
        self._origin_trace_header = trace_header

    def get_origin_trace_header(self):
        header = self._origin_trace_header
        if header is NO_TRACE_HEADER:
            # The request had no header: the caller gets an empty one of its own, never the shared one.
            header = self._origin_trace_header = TraceHeader()
        return header

    # -- serialisation ---------------------------------------------------------------------------
    def serialize(self) -> str:
        """Return the entity as compact JSON."""
        return encode_document(self.to_dict()).decode('utf-8')

    def to_dict(self) -> Dict[str, Any]:
        """Return the wire document as a dict, omitting empty fields and False flags."""
        doc: Dict[str, Any] = {'id': self.id, 'name': self.name, 'start_time': self.start_time}
        if self.parent_id:
            doc['parent_id'] = self.parent_id
        doc['in_progress'] = self.in_progress
        if self.end_time is not None:
            doc['end_time'] = self.end_time
        if self._has_blocks:
            if self._http:
                doc['http'] = self._http
            if self._annotations:
                doc['annotations'] = self._annotations
            if self._metadata:
                doc['metadata'] = {ns: metadata_to_dict(values) for ns, values in self._metadata.items()}
            if self._aws:
                doc['aws'] = self._aws
            cause = self._cause
            if cause:
                if isinstance(cause, dict):
                    cause = dict(cause)
                    cause['exceptions'] = [t.to_dict() if isinstance(t, Throwable) else t
                                           for t in cause.get('exceptions', ())]
                doc['cause'] = cause
        if self._subs:
            doc['subsegments'] = [sub.to_dict() for sub in self._subs]
        if self.error:
            doc['error'] = True
        if self.fault:
            doc['fault'] = True
        if self.throttle:
            doc['throttle'] = True
        return doc

    # Mutators test ``in_progress`` before calling this, so writing to an open entity costs no call.
    def _check_ended(self) -> None:
        if not self.in_progress:
            raise AlreadyEndedException('Already ended segment and subsegment cannot be modified.')
