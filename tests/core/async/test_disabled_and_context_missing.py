"""The SDK switch and the context-missing strategies behave the same in async and sync code."""
import asyncio

import pytest

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core.context import MISSING_SEGMENT_MSG
from aws_like_sdk.core.exceptions.exceptions import SegmentNotFoundException
from aws_like_sdk.core.models.dummy_entities import DummySegment, DummySubsegment


def _sync_capture(recorder):
    @recorder.capture('work')
    def work(x):
        return x + 1
    return work(1)


def _async_capture(recorder):
    @recorder.capture_async('work')
    async def work(x):
        await asyncio.sleep(0)
        return x + 1
    return asyncio.run(work(1))


def _async_capture_in_segment(recorder):
    async def main():
        async with recorder.in_segment_async('seg') as seg:
            async with recorder.in_subsegment_async('sub') as sub:
                result = await recorder.capture_async('work')(_add_one)(1)
        return seg, sub, result
    return asyncio.run(main())


async def _add_one(x):
    return x + 1


CALLERS = {'sync': _sync_capture, 'async': _async_capture}


@pytest.mark.parametrize('style', sorted(CALLERS))
def test_disabled_sdk_runs_the_function_and_sends_nothing(recorder, udp_sink, style):
    global_sdk_config.set_sdk_enabled(False)
    assert CALLERS[style](recorder) == 2
    assert udp_sink.settle(quiet=0.1) == []


def test_disabled_sdk_async_context_managers_yield_dummies(recorder, udp_sink):
    global_sdk_config.set_sdk_enabled(False)
    seg, sub, result = _async_capture_in_segment(recorder)
    assert result == 2
    assert isinstance(seg, DummySegment) and isinstance(sub, DummySubsegment)
    assert recorder.is_sampled() is False
    assert udp_sink.settle(quiet=0.1) == []


@pytest.mark.parametrize('style', sorted(CALLERS))
def test_runtime_error_strategy_raises_in_both(recorder, style):
    recorder.configure(context_missing='RUNTIME_ERROR')
    with pytest.raises(SegmentNotFoundException, match='cannot find the current segment'):
        CALLERS[style](recorder)


@pytest.mark.parametrize('style', sorted(CALLERS))
def test_log_error_strategy_logs_and_runs(recorder, caplog_sdk, udp_sink, style):
    recorder.configure(context_missing='LOG_ERROR')
    assert CALLERS[style](recorder) == 2
    errors = [r for r in caplog_sdk.records if r.levelname == 'ERROR']
    assert [r.getMessage() for r in errors] == [MISSING_SEGMENT_MSG]
    assert 'No segment found, cannot begin subsegment work.' in caplog_sdk.text
    assert udp_sink.settle(quiet=0.1) == []


@pytest.mark.parametrize('style', sorted(CALLERS))
def test_ignore_error_strategy_is_silent(recorder, caplog_sdk, style):
    recorder.configure(context_missing='IGNORE_ERROR')
    assert CALLERS[style](recorder) == 2
    assert not [r for r in caplog_sdk.records if r.levelname == 'ERROR']


async def test_async_context_manager_without_segment_yields_none(recorder):
    recorder.configure(context_missing='IGNORE_ERROR')
    async with recorder.in_subsegment_async('orphan') as sub:
        assert sub is None
    assert recorder.context.peek_trace_entity() is None


def test_enabled_again_records_in_async(recorder, udp_sink):
    global_sdk_config.set_sdk_enabled(False)
    _async_capture_in_segment(recorder)
    global_sdk_config.set_sdk_enabled(True)
    seg, _, _ = _async_capture_in_segment(recorder)
    (doc,) = udp_sink.wait_for(1)
    assert doc['id'] == seg.id
