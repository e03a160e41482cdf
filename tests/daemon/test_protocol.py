"""Datagram header rules, exactly as the reference daemon applies them."""
import pytest

from aws_like_sdk.daemon.protocol import (INVALID_HEADER, MISSING_BODY, MISSING_HEADER, split_datagram)


@pytest.mark.parametrize('data, body', [
    (b'{"format":"json","version":1}\n{"a":1}', b'{"a":1}'),
    (b'{"format": "json", "version": 1}\n{}', b'{}'),            # upstream SDK spacing
    (b'{"format":"JSON","version":1}\nx', b'x'),                # case-insensitive format
    (b'{"Format":"json","VERSION":1}\nx', b'x'),                # Go matches keys case-insensitively
    (b'{"format":"json","version":1,"extra":true}\nx', b'x'),   # extra keys are fine
    (b' {"version":1,"format":"json"} \nx\ny', b'x\ny'),         # split at the first newline only
])
def test_accepted(data, body):
    assert split_datagram(data) == (body, None)


@pytest.mark.parametrize('data, reason', [
    (b'garbage', MISSING_HEADER),
    (b'{"format":"json","version":1}', MISSING_HEADER),
    (b'', MISSING_HEADER),
    (b'{"format":"json","version":1}\n', MISSING_BODY),
    (b'{"format":"xml","version":1}\n{}', INVALID_HEADER),
    (b'{"format":"json","version":2}\n{}', INVALID_HEADER),
    (b'{"format":"json","version":"1"}\n{}', INVALID_HEADER),
    (b'{"format":"json","version":1.0}\n{}', INVALID_HEADER),
    (b'{"format":"json"}\n{}', INVALID_HEADER),
    (b'{"format":"json","version":1\n{}', INVALID_HEADER),      # truncated header JSON
    (b'[1]\n{}', INVALID_HEADER),
    (b'\xff\xfe\n{}', INVALID_HEADER),
    (b'\n{}', INVALID_HEADER),
])
def test_rejected(data, reason):
    assert split_datagram(data) == (None, reason)
