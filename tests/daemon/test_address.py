"""Listening addresses: flags, AWS_XRAY_DAEMON_ADDRESS, loopback detection."""
import pytest

from aws_like_sdk.daemon.address import (AddressError, addresses_from_env, format_address, is_loopback,
                                         parse_host_port, resolve_addresses)


def test_parse_host_port():
    assert parse_host_port('127.0.0.1:2000') == ('127.0.0.1', 2000)
    assert parse_host_port('[::1]:0') == ('::1', 0)
    for bad in ('2000', 'host:', 'host:x', 'host:70000', ':2000'):
        with pytest.raises(AddressError):
            parse_host_port(bad)


def test_env_forms():
    assert addresses_from_env('127.0.0.2:3000') == (('127.0.0.2', 3000), ('127.0.0.2', 3000))
    assert addresses_from_env('tcp:127.0.0.1:2001 udp:127.0.0.1:2002') == (('127.0.0.1', 2002),
                                                                          ('127.0.0.1', 2001))
    assert addresses_from_env('') == (None, None)
    for bad in ('udp:127.0.0.1:1 udp:127.0.0.1:2', 'a:1 b:2 c:3', 'tcp:127.0.0.1:1 x:127.0.0.1:2'):
        with pytest.raises(AddressError):
            addresses_from_env(bad)


def test_flags_beat_environment_beats_default(monkeypatch):
    assert resolve_addresses(None, None) == (('127.0.0.1', 2000), ('127.0.0.1', 2000))
    monkeypatch.setenv('AWS_XRAY_DAEMON_ADDRESS', 'tcp:127.0.0.1:2101 udp:127.0.0.1:2102')
    assert resolve_addresses(None, None) == (('127.0.0.1', 2102), ('127.0.0.1', 2101))
    assert resolve_addresses('127.0.0.1:9', None) == (('127.0.0.1', 9), ('127.0.0.1', 2101))


def test_loopback():
    assert is_loopback('127.0.0.1') and is_loopback('localhost') and is_loopback('::1')
    assert is_loopback('127.3.2.1')
    assert not is_loopback('0.0.0.0') and not is_loopback('10.1.2.3') and not is_loopback('::')
    assert format_address(('::1', 5)) == '[::1]:5'
