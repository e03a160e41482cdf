import logging

import pytest

from aws_like_sdk.core.models.trace_header import TraceHeader

ROOT = '1-5759e988-bd862e3fe1be46a994272793'
PARENT = '53995c3f42cd8ad8'


def test_parse_full_header_and_round_trip():
    raw = 'Root=%s;Parent=%s;Sampled=1;Lineage=1:a87bd80c:0;CalledFrom=app' % (ROOT, PARENT)
    header = TraceHeader.from_header_str(raw)
    assert (header.root, header.parent, header.sampled) == (ROOT, PARENT, 1)
    assert list(header.data.items()) == [('Lineage', '1:a87bd80c:0'), ('CalledFrom', 'app')]
    assert header.to_header_str() == raw


@pytest.mark.parametrize('raw', [
    ' Root=%s; Parent=%s; Sampled=0 ' % (ROOT, PARENT),
    'Root=%s;Parent=%s;Sampled=0;' % (ROOT, PARENT),
    'Self=1-67891234-abcdef012345678912345678;Root=%s;Parent=%s;Sampled=0' % (ROOT, PARENT),
])
def test_tolerates_spaces_trailing_delimiter_and_drops_self(raw):
    header = TraceHeader.from_header_str(raw)
    assert (header.root, header.parent, header.sampled) == (ROOT, PARENT, 0)
    assert header.data == {}
    assert header.to_header_str() == 'Root=%s;Parent=%s;Sampled=0' % (ROOT, PARENT)


def test_value_containing_equals_and_pair_without_equals():
    header = TraceHeader.from_header_str('Root=%s;garbage;Foo=a=b' % ROOT)
    assert header.root == ROOT
    assert header.data == {'Foo': 'a=b'}


@pytest.mark.parametrize('raw', [None, '', ';;;', '====', 'complete garbage', b'\xff\xfe', 12345, 'Root=not-a-trace-id'])
def test_garbage_gives_empty_header_not_exception(raw):
    header = TraceHeader.from_header_str(raw)
    assert header.root is None and header.parent is None


@pytest.fixture
def fresh_warnings(monkeypatch):
    from aws_like_sdk.core.models import trace_header
    monkeypatch.setattr(trace_header, '_warned_at', {})
    return trace_header


def test_malformed_root_discards_root_and_parent_with_warning(caplog, fresh_warnings):
    caplog.set_level(logging.WARNING)
    header = TraceHeader.from_header_str('Root=1-xyz;Parent=%s;Sampled=1' % PARENT)
    assert header.root is None and header.parent is None and header.sampled == 1
    assert 'malformed Root' in caplog.text


def test_an_unknown_sampled_value_is_logged_and_left_to_the_rules(caplog, fresh_warnings):
    caplog.set_level(logging.WARNING)
    header = TraceHeader.from_header_str('Root=%s;Sampled=2' % ROOT)
    assert header.root == ROOT and header.sampled is None
    assert "Ignoring Sampled='2'" in caplog.text


def test_malformed_headers_cannot_flood_the_log(caplog, fresh_warnings, monkeypatch):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk.core.models.trace_header')
    huge = 'Root=' + 'x' * 7000
    for _ in range(50):
        assert TraceHeader.from_header_str(huge).root is None
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and len(caplog.records) == 50
    # Each line shows the start of the value and its length, never the whole of it.
    assert all(len(record.getMessage()) < 300 and '(7000 characters)' in record.getMessage()
               for record in caplog.records)
    # Once the interval has passed, the next one is a warning again.
    monkeypatch.setattr(fresh_warnings, 'WARNING_INTERVAL_SECONDS', 0.0)
    caplog.clear()
    TraceHeader.from_header_str(huge)
    assert [record.levelno for record in caplog.records] == [logging.WARNING]


@pytest.mark.parametrize('value,expected', [('1', 1), (1, 1), (True, 1), ('0', 0), (0, 0), (False, 0),
                                            ('?', '?'), ('yes', None), (2, None), (None, None)])
def test_sampled_normalisation(value, expected):
    assert TraceHeader(sampled=value).sampled == expected


def test_serialisation_only_writes_present_fields():
    assert TraceHeader(root=ROOT).to_header_str() == 'Root=' + ROOT
    assert TraceHeader(root=ROOT, sampled='?').to_header_str() == 'Root=%s;Sampled=?' % ROOT
    assert TraceHeader().to_header_str() == ''
