"""AWSXRayRecorder: configure, begin/end (sub)segments, capture, annotations.

The recorder owns no I/O itself: emission, sampling, streaming and context are seams set through
``configure``. Each entry point checks the SDK switch once, at the edge.
"""
import logging
import os
import platform
import time
from typing import Any, Callable, Dict, Optional, Union

from .. import global_sdk_config
from ..sdk_config import SDKConfig
from ..version import VERSION
from . import _recording
from .context import Context, _detached, _is_subsegment, flush_detached_subsegments
from .daemon_config import DaemonConfig
from .emitters.udp_emitter import UDPEmitter
from .exceptions.exceptions import SegmentNameMissingException
from .models.default_dynamic_naming import DefaultDynamicNaming
from .models.dummy_entities import DummySegment, DummySubsegment
from .lambda_launcher import LambdaContext, check_in_lambda
from .models.pending_segment import PendingSegment
from .models.segment import Segment, SegmentContextManager
from .models.subsegment import Subsegment, SubsegmentContextManager
from .streaming.default_streaming import DefaultStreaming
from .utils.own_methods import own_methods, stored_value, uses_own_methods

# Recorder methods whose work the hot path does inline while they are AWSXRayRecorder's own.
_HOT_METHODS = ('record_subsegment', 'begin_subsegment', 'end_subsegment_by_handle', '_after_subsegment_closed',
                'clear_trace_entities')
# Methods a deferred request segment stands in for (see begin_deferred_segment): while any of them is
# customised, requests begin real segments through them.
_DEFERRAL_METHODS = ('begin_segment', 'end_segment_by_handle', '_send_segment', '_clear_sent_context')
_WATCHED_METHODS = frozenset(_HOT_METHODS + _DEFERRAL_METHODS)

log = logging.getLogger(__name__)

TRACING_NAME_KEY = 'AWS_XRAY_TRACING_NAME'
DAEMON_ADDR_KEY = 'AWS_XRAY_DAEMON_ADDRESS'
CONTEXT_MISSING_KEY = 'AWS_XRAY_CONTEXT_MISSING'

XRAY_META = {'xray': {'sdk': 'aws_like_sdk for Python', 'sdk_version': VERSION}}
SERVICE_INFO = {'runtime': platform.python_implementation(), 'runtime_version': platform.python_version()}


def _copy_aws_metadata(meta: Dict[str, Any]) -> Dict[str, Any]:
    # Two levels are all the plugin and xray sections have; much cheaper than deepcopy per segment.
    if len(meta) == 1 and 'xray' in meta:
        return {'xray': meta['xray'].copy()}
    return {key: dict(value) if isinstance(value, dict) else value for key, value in meta.items()}


class AWSXRayRecorder:
    """Builds segments and subsegments and hands finished ones to the emitter.

    Construction is cheap and does no I/O: the sampler is created on first use and the emitter
    opens its socket on first send.
    """

    #: The context, when the hot path may work on its stack directly: it is a :class:`Context` and
    #: none of ``_HOT_METHODS`` is overridden (by a subclass or on the instance, e.g. by a mock).
    #: None otherwise, and every step goes through the methods.
    _fast_context: Optional[Context] = None
    #: ``_fast_context``, when also none of ``_DEFERRAL_METHODS`` is customised: request segments may
    #: then be deferred (:meth:`begin_deferred_segment`).
    _deferral_context: Optional[Context] = None
    #: Whether the context is Lambda's, kept up to date by ``_refresh_fast_path``; None when unknown (a
    #: subclass that sets attributes its own way, or computes its context), and the helper then asks.
    _context_is_lambda: Optional[bool] = None

    def __init__(self) -> None:
        lambda_context = check_in_lambda()
        self._in_lambda = lambda_context is not None
        self._context = lambda_context if lambda_context is not None else Context()
        self._emitter = UDPEmitter()
        self._sampler = None
        self._sampling = True
        self._streaming = DefaultStreaming(0 if self._in_lambda else 30)
        self._max_trace_back = 10
        self._service = os.environ.get(TRACING_NAME_KEY)
        self._dynamic_naming = None
        self._aws_metadata: Dict[str, Any] = _copy_aws_metadata(XRAY_META)
        self._origin: Optional[str] = None
        self._stream_sql = True
        self._daemon_address: Optional[str] = None
        self._plugins = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == '_context' or name in _WATCHED_METHODS:
            self._refresh_fast_path()

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        if name == '_context' or name in _WATCHED_METHODS:
            self._refresh_fast_path()

    def _refresh_fast_path(self) -> None:
        # (Never through self.__dict__: see utils/own_methods.py.)
        context = stored_value(self, '_context')
        # Read by the request helper once per request (an isinstance there costs more than the rest of
        # its checks); None, for "ask the context", when the context is computed (a subclass's property).
        is_lambda = isinstance(context, LambdaContext) if context is not None else None
        object.__setattr__(self, '_context_is_lambda', is_lambda)
        plain = isinstance(context, Context) and uses_own_methods(self, _OWN_HOT_METHODS)
        object.__setattr__(self, '_fast_context', context if plain else None)
        deferrable = plain and uses_own_methods(self, _OWN_DEFERRAL_METHODS)
        object.__setattr__(self, '_deferral_context', context if deferrable else None)

    # -- configuration ---------------------------------------------------------------------------
    def configure(self, sampling: Optional[bool] = None, plugins=None, context_missing: Optional[str] = None,
                  sampling_rules: Union[None, dict, str] = None, daemon_address: Optional[str] = None,
                  service: Optional[str] = None, context=None, emitter=None, streaming=None,
                  dynamic_naming=None, streaming_threshold: Optional[int] = None,
                  max_trace_back: Optional[int] = None, sampler=None, stream_sql: Optional[bool] = None) -> None:
        """Configure the recorder; only the arguments given are applied.

        Environment variables win over arguments: ``AWS_XRAY_TRACING_NAME`` over ``service``,
        ``AWS_XRAY_DAEMON_ADDRESS`` over ``daemon_address``, ``AWS_XRAY_CONTEXT_MISSING`` over
        ``context_missing``. Unlike upstream, omitting ``stream_sql`` leaves it unchanged.

        Raises:
            InvalidDaemonAddressException: for an unparsable daemon address.
            InvalidSamplingManifestError: for a malformed ``sampling_rules`` document.
        """
        if sampling is not None:
            self.sampling = sampling
        if sampler:
            self.sampler = sampler
        if service:
            self.service = os.environ.get(TRACING_NAME_KEY, service)
        if sampling_rules:
            self._load_sampling_rules(sampling_rules)
        if emitter:
            self.emitter = emitter
        if daemon_address or os.environ.get(DAEMON_ADDR_KEY):
            address = os.environ.get(DAEMON_ADDR_KEY) or daemon_address
            DaemonConfig(address)  # validate both halves before changing anything
            self._daemon_address = address
            self.emitter.set_daemon_address(address)
        if context:
            self.context = context
        if context_missing:
            # Applied after context=, so it reaches the context now in use.
            self.context.context_missing = os.environ.get(CONTEXT_MISSING_KEY, context_missing)
        for attribute, value in (('dynamic_naming', dynamic_naming), ('streaming', streaming)):
            if value:
                setattr(self, attribute, value)
        if streaming_threshold is not None:
            self.streaming_threshold = streaming_threshold
        if isinstance(max_trace_back, int) and max_trace_back >= 0:
            self.max_trace_back = max_trace_back
        if stream_sql is not None:
            self.stream_sql = stream_sql
        if plugins:
            self._load_plugins(plugins)
        elif plugins is not None:
            self._aws_metadata = _copy_aws_metadata(XRAY_META)
            self._origin = None
            self._plugins = None
        if type(self._sampler).__name__ == 'DefaultSampler':
            self._sampler.load_settings(DaemonConfig(self._daemon_address), self.context, self._origin)

    def _load_plugins(self, plugins) -> None:
        from .plugins.utils import get_plugin_modules
        meta = _copy_aws_metadata(XRAY_META)
        origin = None
        for module in get_plugin_modules(plugins):
            try:
                module.initialize()
            except Exception:  # noqa: BLE001 - a failing plugin contributes nothing
                log.warning('Plugin %s failed to initialise.', module.__name__, exc_info=True)
                continue
            runtime_context = getattr(module, 'runtime_context', None)
            if runtime_context:
                meta[module.SERVICE_NAME] = runtime_context
                origin = module.ORIGIN
        self._plugins = plugins
        self._aws_metadata = meta
        self._origin = origin

    def _load_sampling_rules(self, sampling_rules: Union[dict, str]) -> None:
        # The sampler accepts a dict or a file path and validates the document.
        self.sampler.load_local_rules(sampling_rules)

    # -- segments --------------------------------------------------------------------------------
    def in_segment(self, name: Optional[str] = None, **segment_kwargs: Any) -> SegmentContextManager:
        """Context manager that begins a segment and always ends it."""
        return SegmentContextManager(self, name=name, **segment_kwargs)

    def in_subsegment(self, name: Optional[str] = None, **subsegment_kwargs: Any) -> SubsegmentContextManager:
        """Context manager (and decorator) that records a subsegment."""
        return SubsegmentContextManager(self, name=name, **subsegment_kwargs)

    def begin_segment(self, name: Optional[str] = None, traceid: Optional[str] = None,
                      parent_id: Optional[str] = None, sampling: Optional[int] = None) -> Segment:
        """Begin a segment and make it current, replacing whatever was open.

        Args:
            name: segment name; defaults to the configured service name.
            traceid: continue this trace (from an incoming header); a new one otherwise.
            parent_id: id of the caller's (sub)segment.
            sampling: an explicit decision (0/1 or a rule name) that overrides the sampler.

        Raises:
            SegmentNameMissingException: when neither ``name`` nor a service name is set.
        """
        if not global_sdk_config.sdk_enabled():
            return DummySegment(SDKConfig.DISABLED_ENTITY_NAME)
        seg_name = name or self._service
        if not seg_name:
            raise SegmentNameMissingException('Segment name is required.')
        if sampling is not None and not sampling:
            decision: Any = False
        elif sampling:
            decision = sampling
        elif self._sampling:
            request = {'service': seg_name}
            if self._origin:
                request['service_type'] = self._origin
            decision = self.sampler.should_trace(request)
        else:
            decision = True
        if decision:
            segment = Segment(seg_name, None, traceid, parent_id)
            # _populate_runtime_context, inlined: this runs for every traced request. The aws and
            # service blocks are shared until a segment changes its own (copy on first access).
            if self._origin:
                segment.origin = self._origin
            segment._aws = self._aws_metadata
            segment._has_blocks = True
            segment._service = SERVICE_INFO
            if decision.__class__ is str:
                segment.set_rule_name(decision)
        else:
            segment = DummySegment(seg_name)
        context = self._fast_context
        var = context._fast if context is not None else None
        if var is not None:
            var.set((segment,))
        else:
            self._context.put_segment(segment)
        return segment

    def begin_deferred_segment(self, name: Optional[str], traceid: Optional[str], parent_id: Optional[str],
                               http_block: Dict[str, Any], annotations: Optional[Dict[str, Any]] = None,
                               origin_trace_header: Any = None) -> Optional[PendingSegment]:
        """Begin a sampled request segment whose :class:`Segment` is built only if something asks for it.

        For web adapters (through ``ext/_http.py``): the segment is kept as its document (see
        :mod:`~aws_like_sdk.core.models.pending_segment`) and made current; any reader of the
        context gets the real segment. End it with :meth:`end_deferred_segment`.

        Returns None, having changed nothing, when deferring is not possible here: a customised
        context, a recorder whose segment methods are customised (by a subclass or on the instance),
        an emitter that does not declare ``accepts_documents = True`` (custom emitters receive real
        segments unless they do; :class:`UDPEmitter` does) or no segment name. The caller then begins the segment with
        :meth:`begin_segment`. The caller has checked the SDK switch (web adapters do, at their edge).
        """
        context = self._deferral_context
        var = context._fast if context is not None else None
        seg_name = name or self._service
        emitter = self._emitter
        # ``is True``: a mock emitter answers any attribute with a (truthy) mock.
        if var is None or not seg_name or getattr(emitter, 'accepts_documents', False) is not True:
            return None
        pending = PendingSegment(seg_name, traceid, parent_id, http_block, annotations, self._aws_metadata,
                                 SERVICE_INFO, self._origin, origin_trace_header, emitter)
        var.set((pending,))
        return pending

    def end_deferred_segment(self, pending: PendingSegment, status: int, content_length: Optional[int],
                             end_time: Optional[float] = None) -> Optional[Segment]:
        """End a request begun with :meth:`begin_deferred_segment`, with an int status and length.

        Returns None when the request ended as it was deferred: its document is closed with the
        response and emitted. Returns the real segment when something asked for it meanwhile (or
        the emitter was replaced); the caller then records the outcome on it and ends it as usual.
        """
        emitter = self._emitter
        if emitter is not pending.emitter:
            # Replaced during the request: the new one may expect real segments.
            return pending.materialize()
        segment = pending.finish(status, content_length, time.time() if end_time is None else end_time)
        if segment is not None:
            return segment
        emitter.send_entity(pending)
        self._clear_sent_context()
        return None

    def _populate_runtime_context(self, segment: Segment, sampling_decision: Any) -> None:
        if self._origin:
            segment.origin = self._origin
        segment.aws = _copy_aws_metadata(self._aws_metadata)
        segment.service = dict(SERVICE_INFO)
        if isinstance(sampling_decision, str):
            segment.set_rule_name(sampling_decision)

    def end_segment(self, end_time: Optional[float] = None) -> None:
        """Close the current segment; it is emitted once no subsegment in it is still open."""
        if not global_sdk_config.sdk_enabled():
            return
        self._context.end_segment(end_time)
        segment = self.current_segment()
        if segment is not None and segment.ready_to_send():
            self._send_segment(segment)

    def end_segment_by_handle(self, segment, end_time: Optional[float] = None) -> None:
        """Close ``segment`` itself (not whatever is current); used by middlewares that keep a handle.

        A segment begun while the SDK was enabled is ended and emitted even if the SDK was switched
        off meanwhile, so no request is left half-recorded.
        """
        if not segment.in_progress:
            return
        segment.close(end_time)
        # ready_to_send(), inline (once per request): closed, and nothing in its tree still open.
        if not segment._open:
            self._send_segment(segment)

    def current_segment(self) -> Optional[Segment]:
        """Return the segment owning the current entity (or apply the context-missing strategy)."""
        entity = self.get_trace_entity()
        if _is_subsegment(entity):
            return entity.parent_segment
        return entity

    # -- subsegments -----------------------------------------------------------------------------
    def begin_subsegment(self, name: str, namespace: str = 'local') -> Optional[Subsegment]:
        """Begin a subsegment under the current entity; None when no segment is open."""
        if not global_sdk_config.sdk_enabled():
            return DummySubsegment(DummySegment(SDKConfig.DISABLED_ENTITY_NAME))
        context = self._fast_context
        var = context._fast if context is not None else None
        if var is not None:
            stack = var.get()
            if stack:
                subsegment = _recording.push_subsegment(var, stack, name, namespace)
                if subsegment is not None:
                    return subsegment
        entity = self._context.get_trace_entity()
        if entity is None:
            log.warning('No segment found, cannot begin subsegment %s.', name)
            return None
        segment = entity.parent_segment if getattr(entity, 'type', None) == 'subsegment' else entity
        if entity.sampled:
            subsegment = Subsegment(name, namespace, segment)
        else:
            subsegment = DummySubsegment(segment, name)
        self._context.put_subsegment(subsegment)
        return subsegment

    def begin_subsegment_without_sampling(self, name: str) -> Optional[Subsegment]:
        """Begin an unsampled (dummy) subsegment, e.g. to avoid oversampling SQS consumers."""
        if not global_sdk_config.sdk_enabled():
            return DummySubsegment(DummySegment(SDKConfig.DISABLED_ENTITY_NAME))
        entity = self._context.get_trace_entity()
        if entity is None:
            log.warning('No segment found, cannot begin subsegment %s.', name)
            return None
        segment = entity.parent_segment if _is_subsegment(entity) else entity
        subsegment = DummySubsegment(segment, name)
        self._context.put_subsegment(subsegment)
        return subsegment

    def current_subsegment(self) -> Optional[Subsegment]:
        """Return the current entity if it is a subsegment, else None."""
        if not global_sdk_config.sdk_enabled():
            return DummySubsegment(DummySegment(SDKConfig.DISABLED_ENTITY_NAME))
        entity = self.get_trace_entity()
        return entity if _is_subsegment(entity) else None

    def end_subsegment(self, end_time: Optional[float] = None) -> None:
        """Close the current subsegment; emit the segment if it is now complete, else maybe stream."""
        if not global_sdk_config.sdk_enabled():
            return
        entity = self._context.peek_trace_entity()
        if not self._context.end_subsegment(end_time):
            return
        self._after_subsegment_closed(entity.parent_segment)

    def end_subsegment_by_handle(self, subsegment, end_time: Optional[float] = None) -> None:
        """Close ``subsegment`` itself (not whatever is current) and emit or stream as needed."""
        # No SDK-switch check: the subsegment exists, so closing it is right either way.
        if not subsegment.in_progress:
            return
        context = self._fast_context
        var = context._fast if context is not None else None
        if var is not None:
            stack = var.get()
            if stack and stack[-1] is subsegment and subsegment.__class__ is Subsegment:
                # The usual case, Context.end_subsegment_entity and Subsegment.close inlined.
                subsegment.end_time = time.time() if end_time is None else end_time
                subsegment.in_progress = False
                segment = subsegment.parent_segment
                try:
                    segment._open.pop()
                except IndexError:  # closed without ever being counted
                    pass
                except AttributeError:  # a parent_segment that is not a Segment (set by hand)
                    segment.decrement_ref_counter()
                var.set(stack[:-1])
                self._after_subsegment_closed(segment)
                return
        self._context.end_subsegment_entity(subsegment, end_time)
        self._after_subsegment_closed(subsegment.parent_segment)

    def _after_subsegment_closed(self, segment) -> None:
        if _detached:
            flush_detached_subsegments(segment, self._stream_subsegment_out)
        # ready_to_send() inlined (FacadeSegment never leaves in_progress, so it is never "ready").
        if not segment.in_progress and not segment._open:
            self._send_segment(segment)
        elif segment.sampled:
            streaming = self._streaming
            if streaming.__class__ is DefaultStreaming:
                if len(segment._attached) > streaming._threshold:
                    streaming.stream(segment, self._stream_subsegment_out)
            elif streaming.is_eligible(segment):
                streaming.stream(segment, self._stream_subsegment_out)

    # -- data on the current entity --------------------------------------------------------------
    def put_annotation(self, key: str, value: Any) -> None:
        """Annotate the current entity (ignored when it is unsampled or the SDK is disabled)."""
        if not global_sdk_config.sdk_enabled():
            return
        entity = self.get_trace_entity()
        if entity is not None and entity.sampled:
            if not entity.in_progress:
                log.warning('Annotation %r dropped: %r has already ended.', key, entity.name)
                return
            entity.put_annotation(key, value)

    def put_metadata(self, key: str, value: Any, namespace: str = 'default') -> None:
        """Add metadata to the current entity (ignored when it is unsampled or the SDK is disabled)."""
        if not global_sdk_config.sdk_enabled():
            return
        entity = self.get_trace_entity()
        if entity is not None and entity.sampled:
            if not entity.in_progress:
                log.warning('Metadata %r dropped: %r has already ended.', key, entity.name)
                return
            entity.put_metadata(key, value, namespace)

    def is_sampled(self) -> bool:
        """Whether the current entity is sampled; False with no entity or when disabled."""
        if not global_sdk_config.sdk_enabled():
            return False
        entity = self.get_trace_entity()
        return bool(entity is not None and entity.sampled)

    def get_trace_entity(self):
        return self._context.get_trace_entity()

    def set_trace_entity(self, trace_entity) -> None:
        """Make ``trace_entity`` current here, e.g. at the start of work in another thread."""
        self._context.set_trace_entity(trace_entity)

    def clear_trace_entities(self) -> None:
        self._context.clear_trace_entities()

    # -- streaming and emission ------------------------------------------------------------------
    def stream_subsegments(self) -> None:
        """Stream completed subtrees of the current segment if the streaming strategy allows."""
        segment = self.current_segment()
        if self._streaming.is_eligible(segment):
            self._streaming.stream(segment, self._stream_subsegment_out)

    def _send_segment(self, segment: Optional[Segment] = None) -> None:
        if segment is None:
            segment = self.current_segment()
            if segment is None:
                return
        # claim_emission(), inline: list.pop is atomic, so exactly one caller takes the token.
        try:
            segment._emission_token.pop()
        except IndexError:
            # Already sent: a late subsegment ended after its segment; its own context stays intact.
            return
        if segment.sampled:
            self._emitter.send_entity(segment)
        self._clear_sent_context()

    def _clear_sent_context(self) -> None:
        # The segment is gone: nothing in this thread or task is current any more.
        context = self._fast_context
        var = context._fast if context is not None else None
        if var is not None:
            var.set(())
        else:
            self.clear_trace_entities()

    def _stream_subsegment_out(self, subsegment) -> None:
        self._emitter.send_entity(subsegment)

    # -- capture ---------------------------------------------------------------------------------
    def capture(self, name: Optional[str] = None) -> SubsegmentContextManager:
        """Decorator recording a subsegment per call, named ``name`` or the function name."""
        return self.in_subsegment(name=name)

    def record_subsegment(self, wrapped: Callable, instance: Any, args, kwargs, name: str, namespace: str,
                          meta_processor: Optional[Callable]) -> Any:
        """Call ``wrapped`` inside a subsegment; used by capture and every library patch."""
        return _recording.record_sync(self, wrapped, instance, args, kwargs, name, namespace, meta_processor)

    def _is_subsegment(self, entity) -> bool:
        return _is_subsegment(entity)

    # -- properties ------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return global_sdk_config.sdk_enabled()

    @property
    def sampling(self) -> bool:
        return self._sampling

    @sampling.setter
    def sampling(self, value: bool) -> None:
        self._sampling = value

    @property
    def sampler(self):
        if self._sampler is None:
            if self._in_lambda:
                from .sampling.local.sampler import LocalSampler
                self._sampler = LocalSampler()
            else:
                from .sampling.sampler import DefaultSampler
                self._sampler = DefaultSampler()
                self._sampler.load_settings(DaemonConfig(self._daemon_address), self._context, self._origin)
        return self._sampler

    @sampler.setter
    def sampler(self, value) -> None:
        self._sampler = value

    @property
    def service(self) -> Optional[str]:
        return self._service

    @service.setter
    def service(self, value: Optional[str]) -> None:
        self._service = value

    @property
    def dynamic_naming(self):
        return self._dynamic_naming

    @dynamic_naming.setter
    def dynamic_naming(self, value) -> None:
        if isinstance(value, str):
            value = DefaultDynamicNaming(value, self.service)
        self._dynamic_naming = value

    @property
    def context(self):
        return self._context

    @context.setter
    def context(self, value) -> None:
        self._context = value

    @property
    def emitter(self):
        return self._emitter

    @emitter.setter
    def emitter(self, value) -> None:
        self._emitter = value

    @property
    def streaming(self):
        return self._streaming

    @streaming.setter
    def streaming(self, value) -> None:
        self._streaming = value

    @property
    def streaming_threshold(self) -> int:
        return self._streaming.streaming_threshold

    @streaming_threshold.setter
    def streaming_threshold(self, value: int) -> None:
        self._streaming.streaming_threshold = value

    @property
    def max_trace_back(self) -> int:
        return self._max_trace_back

    @max_trace_back.setter
    def max_trace_back(self, value: int) -> None:
        self._max_trace_back = value

    @property
    def stream_sql(self) -> bool:
        return self._stream_sql

    @stream_sql.setter
    def stream_sql(self, value: bool) -> None:
        self._stream_sql = value


# The recorder's own methods, before anyone patches the class (see _refresh_fast_path).
_OWN_HOT_METHODS = own_methods(AWSXRayRecorder, _HOT_METHODS)
_OWN_DEFERRAL_METHODS = own_methods(AWSXRayRecorder, _DEFERRAL_METHODS)
