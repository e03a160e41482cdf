"""utils/own_methods.py, and why the recorder, context and emitter never read their own ``__dict__``.

On CPython 3.11 and 3.12 an instance keeps its attributes inline until someone reads its ``__dict__``;
from then on every attribute read on it misses the interpreter's fast path. The override checks of
the recorder, the context and the UDP emitter used to read ``__dict__`` and so slowed every traced
request; these tests pin both the checks' behaviour and the inline storage after a traced request.
"""
import functools
import gc
import sys
from unittest import mock

import pytest

from aws_like_sdk.core.context import Context
from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_like_sdk.core.models.pending_segment import PendingSegment
from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.recorder import AWSXRayRecorder
from aws_like_sdk.core.utils.own_methods import own_methods, uses_own_methods
from aws_like_sdk.ext._http import begin_request_for

pytestmark = pytest.mark.timeout(30)


class Greeter:
    def hello(self):
        return 'hello'

    def bye(self):
        return 'bye'


_OWN = own_methods(Greeter, ('hello', 'bye'))


def _begin_deferred(recorder):
    # The request helper as the aiohttp middleware calls it (defer=True).
    return begin_request_for(recorder, 'GET', 'http://example.com/', 'example.com', '/', None, 'agent/1',
                             '10.1.2.3', None, '/', None, False, True)


def test_own_methods_are_recognised_until_overridden_or_replaced():
    assert uses_own_methods(Greeter(), _OWN)

    class Loud(Greeter):
        def hello(self):
            return 'HELLO'

    class Plain(Greeter):
        pass

    assert not uses_own_methods(Loud(), _OWN)
    assert uses_own_methods(Plain(), _OWN)

    greeter = Greeter()
    greeter.bye = functools.partial(Greeter.bye, greeter)
    assert not uses_own_methods(greeter, _OWN)
    greeter.bye = Greeter().bye  # another instance's bound method does something else
    assert not uses_own_methods(greeter, _OWN)
    greeter.bye = greeter.__class__.bye.__get__(greeter)  # the original, assigned back
    assert uses_own_methods(greeter, _OWN)

    with mock.patch.object(Greeter, 'hello'):
        assert not uses_own_methods(Greeter(), _OWN)
    with mock.patch.object(Greeter, 'hello', autospec=True):  # a plain function on the class
        assert not uses_own_methods(Greeter(), _OWN)
    assert uses_own_methods(Greeter(), _OWN)


def _has_materialized_dict(obj, attribute: str) -> bool:
    # A materialized instance dict shows up among the object's referents, holding ``attribute``;
    # inline values show up one by one. (Looking at obj.__dict__ would materialize it.)
    return any(type(ref) is dict and attribute in ref for ref in gc.get_referents(obj))


@pytest.mark.skipif(not (3, 11) <= sys.version_info[:2] <= (3, 12),
                    reason='inline instance attributes that __dict__ reads turn into a dict: CPython 3.11 and 3.12')
def test_a_traced_request_leaves_recorder_context_and_emitter_on_the_fast_attribute_path(recorder, udp_sink):
    probe = Greeter()
    probe.marker = 1
    assert not _has_materialized_dict(probe, 'marker')
    probe.__dict__
    assert _has_materialized_dict(probe, 'marker')  # the probe can tell

    trace = _begin_deferred(recorder)
    assert trace.entity.__class__ is PendingSegment
    assert recorder.emitter.accepts_documents is True
    trace.finish(200, 2)
    assert udp_sink.wait_for(1)[0]['http']['response']['status'] == 200
    recorder.configure(context=Context())  # the override checks run again
    for obj, attribute in ((recorder, '_context'), (recorder._context, '_entities'), (recorder.emitter, '_queue')):
        assert not _has_materialized_dict(obj, attribute), type(obj).__name__


def test_wrapt_wrappers_count_as_overrides(recorder, udp_sink):
    # wrapt's bound wrapper passes __func__ and __self__ through: it must still be called.
    import wrapt

    calls = []

    def audit(wrapped, instance, args, kwargs):
        calls.append(wrapped.__name__)
        return wrapped(*args, **kwargs)

    class Audited(AWSXRayRecorder):
        pass

    wrapt.wrap_function_wrapper(Audited, 'begin_segment', audit)
    audited = Audited()
    audited.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='svc')
    trace = _begin_deferred(audited)
    assert trace.entity.__class__ is Segment and calls == ['begin_segment']
    trace.finish(200, 2)

    received = []

    def inspect(wrapped, instance, args, kwargs):
        received.append(args[0].__class__)
        return wrapped(*args, **kwargs)

    class InspectedEmitter(UDPEmitter):
        pass

    wrapt.wrap_function_wrapper(InspectedEmitter, 'send_entity', inspect)
    emitter = InspectedEmitter(udp_sink.address)
    assert emitter.accepts_documents is False
    recorder.configure(emitter=emitter)
    trace = _begin_deferred(recorder)
    trace.finish(200, 2)
    assert received == [Segment]
    assert len(udp_sink.wait_for(2)) == 2


def test_a_recorder_that_sets_attributes_its_own_way_is_still_traced(udp_sink):
    class Plain(AWSXRayRecorder):
        def __setattr__(self, name, value):  # never runs the recorder's bookkeeping
            object.__setattr__(self, name, value)

    plain = Plain()
    plain.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='svc')
    trace = _begin_deferred(plain)
    assert trace.entity.__class__ is Segment  # the slow path, and traced
    trace.finish(200, 2)
    assert udp_sink.wait_for(1)[0]['http']['response']['status'] == 200


def test_a_computed_context_is_asked_each_time_not_kept(udp_sink):
    tenants = {'a': Context(), 'b': Context()}
    current = ['a']

    class Routed(AWSXRayRecorder):
        """The context is chosen per call (per tenant here) by a property over _context."""

        @property
        def _context(self):
            return tenants[current[0]]

        @_context.setter
        def _context(self, value):
            tenants[current[0]] = value

    routed = Routed()
    routed.configure(service='svc', sampling=False, daemon_address=udp_sink.address)
    assert routed._fast_context is None
    current[0] = 'b'
    segment = routed.begin_segment('s')
    assert tenants['b'].get_trace_entity() is segment and tenants['a'].get_trace_entity() is None
    routed.end_segment()
    assert udp_sink.wait_for(1)[0]['name'] == 's'
