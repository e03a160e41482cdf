"""What the store accepts from a datagram body."""
import json

import pytest

from aws_like_sdk.daemon.documents import InvalidDocument, annotation_text, parse_document

from .conftest import new_id, segment


def test_upstream_style_document_is_parsed():
    doc = segment('app', in_progress=False, annotations={'k': 'v', 'n': 2, 'b': True, 'f': 1.5, 'bad': [1]},
                  subsegments=[{'name': 'q', 'id': new_id(), 'start_time': 1.0, 'end_time': 2.0,
                                'namespace': 'local', 'annotations': {'inner': 'x'}}])
    parsed = parse_document(json.dumps(doc).encode())  # json.dumps default spacing, like upstream
    assert parsed.type == 'segment' and parsed.name == 'app' and not parsed.in_progress
    assert sorted(parsed.annotations) == [('b', 'true'), ('f', '1.5'), ('inner', 'x'), ('k', 'v'), ('n', '2')]


@pytest.mark.parametrize('change, reason', [
    ({'trace_id': 'nope'}, 'invalid_document'),
    ({'id': 'xyz'}, 'invalid_document'),
    ({'name': ''}, 'invalid_document'),
    ({'name': 'x' * 201}, 'invalid_document'),
    ({'start_time': 'soon'}, 'invalid_document'),
    ({'end_time': None}, 'invalid_document'),
    ({'type': 'subsegment'}, 'invalid_document'),   # independent subsegment needs parent_id
    ({'parent_id': 'short'}, 'invalid_document'),
])
def test_rejections(change, reason):
    doc = segment()
    doc.update(change)
    with pytest.raises(InvalidDocument) as info:
        parse_document(json.dumps(doc).encode())
    assert info.value.reason == reason


@pytest.mark.parametrize('body', [b'not json', b'[1,2]', b'\xff\xfe', b'[' * 100000, b'{"a":'])
def test_garbage_bodies(body):
    with pytest.raises(InvalidDocument):
        parse_document(body)


def test_in_progress_without_end_time():
    doc = segment()
    del doc['end_time']
    doc['in_progress'] = True
    parsed = parse_document(json.dumps(doc).encode())
    assert parsed.in_progress and parsed.end_time is None


def test_annotation_text():
    assert annotation_text(True) == 'true' and annotation_text(3.0) == '3' and annotation_text({}) is None
