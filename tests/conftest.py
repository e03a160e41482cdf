"""Fixtures shared by every test: a real loopback UDP sink and recorders pointed at it."""
import logging
import os

import pytest

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core import xray_recorder as global_recorder
from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context
from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_like_sdk.ext._http import _routes_that_record
from tests.support.udp_sink import UDPSink

_ENV_KEYS = ('AWS_XRAY_SDK_ENABLED', 'AWS_XRAY_DAEMON_ADDRESS', 'AWS_XRAY_CONTEXT_MISSING',
             'AWS_XRAY_TRACING_NAME', 'AWS_XRAY_NOOP_ID', 'LAMBDA_TASK_ROOT', '_X_AMZN_TRACE_ID')


@pytest.fixture
def udp_sink():
    """A real UDP socket on 127.0.0.1; ``udp_sink.wait_for(n)`` returns parsed documents."""
    sink = UDPSink()
    yield sink
    sink.close()


@pytest.fixture
def recorder(udp_sink):
    """A fresh recorder that samples everything and emits to ``udp_sink``."""
    rec = AsyncAWSXRayRecorder()
    rec.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='test-service')
    yield rec
    rec.clear_trace_entities()
    _stop_sampler(rec._sampler)


def _stop_sampler(sampler):
    stop = getattr(sampler, 'stop', None)
    if callable(stop):
        stop()


@pytest.fixture
def xray(udp_sink):
    """The global ``xray_recorder``, emitting to ``udp_sink``; its settings are restored afterwards."""
    rec = global_recorder
    saved = {name: getattr(rec, name) for name in ('sampling', 'service', 'context', 'emitter', 'streaming',
                                                    'dynamic_naming', 'max_trace_back', 'stream_sql')}
    saved_sampler = rec._sampler
    rec.configure(sampling=False, context=Context(), emitter=UDPEmitter(udp_sink.address), service='test-service')
    yield rec
    rec.clear_trace_entities()
    if rec._sampler is not saved_sampler:
        _stop_sampler(rec._sampler)
    for name, value in saved.items():
        setattr(rec, name, value)
    rec._sampler = saved_sampler


@pytest.fixture(autouse=True)
def _isolate_environment(monkeypatch):
    """Every test starts with the SDK enabled, no AWS_XRAY_* variables leaking in or out, and no route
    remembered as one whose requests record."""
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    global_sdk_config.set_sdk_enabled(True)
    # Which routes' requests asked for their deferred segment is process state: start each test afresh.
    _routes_that_record.clear()
    yield
    global_sdk_config.set_sdk_enabled(True)


@pytest.fixture
def caplog_sdk(caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    return caplog
