"""One ``remote`` subsegment per MongoDB command, through pymongo's public command monitoring.

:func:`patch` registers an :class:`XRayCommandListener` with ``pymongo.monitoring.register``; pymongo
copies registered listeners into each ``MongoClient`` when the client is built, so clients created
before ``patch()`` are not traced (pass ``event_listeners=[XRayCommandListener()]`` to those).

Each command gives a subsegment named ``<database>@<host>:<port>`` in the ``remote`` namespace with:

* annotations ``mongodb_command_name``, ``mongodb_database_name``, ``mongodb_collection`` (when the
  command names one), ``mongodb_connection_id``, ``mongodb_request_id``, ``mongodb_operation_id`` and,
  once it ends, ``mongodb_duration_micros``;
* an ``sql`` block with ``url`` (``mongodb://host:port/database``, never credentials),
  ``database_type: MongoDB`` and ``driver_version``;
* with ``record_full_documents=True`` only, the command and reply documents as metadata
  ``mongodb_command`` / ``mongodb_reply``: documents hold business data, so they are never recorded
  by default.

A failed command sets ``fault`` and records the failure as an exception (``remote: true`` when the
server answered with an error) plus ``failure`` metadata. Server error messages can quote the
data involved (a duplicate key error names the key), so by default they are reduced to the error
code and name; ``record_full_documents=True`` records the whole failure document.

Started, succeeded and failed events are matched by connection and request id, never through the
"current" entity: the listener keeps every open subsegment by that key and never makes it current,
so events may arrive on any thread.
"""
import json
import logging
import threading
from typing import Any, Dict, Hashable, Optional, Tuple

from ...core import xray_recorder
from ...core.suppression import is_suppressed
from .. import _outgoing
from .._dbdriver import make_url

try:
    from pymongo import monitoring
except ImportError:  # pragma: no cover - the patcher checks that pymongo is installed first
    monitoring = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'XRayCommandListener']

# Failure fields that identify an error without quoting the data it was about.
_SAFE_FAILURE_KEYS = ('ok', 'code', 'codeName', 'errtype', 'errorLabels')
# A command whose end event never arrives must not hold its subsegment forever.
MAX_OPEN_COMMANDS = 10000

_listener: Optional['XRayCommandListener'] = None
_lock = threading.Lock()


def patch(record_full_documents: bool = False) -> None:
    """Trace the commands of every ``MongoClient`` created from now on. Idempotent.

    Args:
        record_full_documents: also record command, reply and failure documents as metadata. Off
            by default: they carry the application's data.
    """
    global _listener
    with _lock:
        if _listener is None:
            _listener = XRayCommandListener(record_full_documents)
            monitoring.register(_listener)
        else:
            # pymongo cannot unregister a listener: the one registered first is switched back on.
            _listener.record_full_documents = record_full_documents
            _listener.enabled = True


def unpatch() -> None:
    """Stop tracing. pymongo has no public way to unregister a listener, so it stays and does nothing."""
    with _lock:
        if _listener is not None:
            _listener.enabled = False


Key = Tuple[Hashable, Hashable]


_CommandListenerBase: type = monitoring.CommandListener if monitoring is not None else object


class XRayCommandListener(_CommandListenerBase):  # type: ignore[misc,valid-type]
    """A ``pymongo.monitoring.CommandListener`` recording one subsegment per command.

    Args:
        record_full_documents: record command, reply and failure documents as metadata.
        recorder: the recorder to use; the global ``xray_recorder`` by default.
    """

    def __init__(self, record_full_documents: bool = False, recorder: Any = None) -> None:
        self.record_full_documents = record_full_documents
        self.enabled = True
        self._recorder = recorder
        self._open: Dict[Key, Any] = {}
        self._open_lock = threading.Lock()

    @property
    def recorder(self) -> Any:
        return self._recorder if self._recorder is not None else xray_recorder

    # pymongo logs and swallows listener exceptions, but logs them as errors of its own: each
    # handler keeps its failures to itself.
    def started(self, event: Any) -> None:
        try:
            self._started(event)
        except Exception:  # noqa: BLE001
            log.debug('Could not begin the subsegment of a MongoDB command.', exc_info=True)

    def succeeded(self, event: Any) -> None:
        try:
            self._finished(event, getattr(event, 'reply', None), None)
        except Exception:  # noqa: BLE001
            log.debug('Could not end the subsegment of a MongoDB command.', exc_info=True)

    def failed(self, event: Any) -> None:
        try:
            self._finished(event, None, getattr(event, 'failure', None))
        except Exception:  # noqa: BLE001
            log.debug('Could not end the subsegment of a failed MongoDB command.', exc_info=True)

    # -- internals --------------------------------------------------------------------------------------
    def _started(self, event: Any) -> None:
        if not self.enabled or is_suppressed():
            return
        recorder = self.recorder
        if _outgoing.parent_entity(recorder) is None:
            return
        host, port = _address(event.connection_id)
        database = event.database_name
        name = '%s@%s:%s' % (database, host, port) if port is not None else '%s@%s' % (database, host)
        subsegment = _outgoing.begin_detached_subsegment(recorder, name)
        if subsegment is None:
            return
        command = event.command
        subsegment.put_annotation('mongodb_command_name', event.command_name)
        subsegment.put_annotation('mongodb_database_name', database)
        collection = _collection(event.command_name, command)
        if collection:
            subsegment.put_annotation('mongodb_collection', collection)
        subsegment.put_annotation('mongodb_connection_id', '%s:%s' % (host, port) if port is not None else host)
        subsegment.put_annotation('mongodb_request_id', event.request_id)
        if event.operation_id is not None:
            subsegment.put_annotation('mongodb_operation_id', event.operation_id)
        subsegment.set_sql(_sql_meta(host, port, database))
        if self.record_full_documents:
            subsegment.put_metadata('mongodb_command', _jsonable(command))
        key = _key(event)
        with self._open_lock:
            if len(self._open) >= MAX_OPEN_COMMANDS:
                stale_key = next(iter(self._open))
                stale = self._open.pop(stale_key)
                log.warning('Dropping the subsegment of MongoDB command %r: no end event was seen.',
                            getattr(stale, 'name', None))
            self._open[key] = subsegment

    def _finished(self, event: Any, reply: Any, failure: Any) -> None:
        with self._open_lock:
            subsegment = self._open.pop(_key(event), None)
        if subsegment is None:
            return
        duration = getattr(event, 'duration_micros', None)
        if duration is not None:
            subsegment.put_annotation('mongodb_duration_micros', duration)
        if failure is not None:
            self._record_failure(subsegment, failure)
        elif self.record_full_documents and reply is not None:
            subsegment.put_metadata('mongodb_reply', _jsonable(reply))
        self.recorder.end_subsegment_by_handle(subsegment)

    def _record_failure(self, subsegment: Any, failure: Any) -> None:
        document = failure if isinstance(failure, dict) else {'errmsg': str(failure)}
        if self.record_full_documents:
            recorded = _jsonable(document)
        else:
            recorded = {k: _jsonable(document[k]) for k in _SAFE_FAILURE_KEYS if k in document}
        subsegment.put_metadata('failure', recorded)
        exception, remote = _failure_exception(document, self.record_full_documents)
        subsegment.add_exception(exception, [], remote=remote)


def _key(event: Any) -> Key:
    return (event.connection_id, event.request_id)


def _address(connection_id: Any) -> Tuple[str, Optional[int]]:
    if isinstance(connection_id, tuple) and connection_id:
        port = connection_id[1] if len(connection_id) > 1 else None
        return str(connection_id[0]), port
    return str(connection_id), None


def _collection(command_name: str, command: Any) -> Optional[str]:
    try:
        value = command.get(command_name)
        if isinstance(value, str):
            return value
        value = command.get('collection')  # getMore names its collection here
        return value if isinstance(value, str) else None
    except AttributeError:
        return None


def _sql_meta(host: str, port: Optional[int], database: str) -> Dict[str, Any]:
    sql: Dict[str, Any] = {'database_type': 'MongoDB'}
    url = make_url('mongodb', None, host, port, database)
    if url:
        sql['url'] = url
    version = getattr(_pymongo(), 'version', None)
    if version:
        sql['driver_version'] = 'pymongo %s' % version
    return sql


def _pymongo() -> Any:
    import pymongo
    return pymongo


def _failure_exception(document: Dict[str, Any], full: bool) -> Tuple[BaseException, bool]:
    """An exception object describing the failure, and whether the server (not the client) failed."""
    from pymongo import errors

    message = str(document.get('errmsg', ''))
    errtype = document.get('errtype')
    if errtype:
        # Raised in the client (network error, timeout): pymongo reports the exception's class name.
        cls = getattr(errors, str(errtype), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.PyMongoError)):
            cls = errors.PyMongoError
        # Network messages name only the server; others (InvalidDocument...) may quote a value.
        safe = issubclass(cls, errors.ConnectionFailure)
        return cls(message if full or safe else str(errtype)), False
    summary = '%s (%s)' % (document.get('codeName', 'error'), document.get('code', '?'))
    return errors.OperationFailure(message if full and message else summary, document.get('code')), True


def _jsonable(document: Any) -> Any:
    """``document`` as plain JSON data (ObjectIds, dates, binaries in MongoDB extended JSON)."""
    from bson import json_util

    return json.loads(json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS))
