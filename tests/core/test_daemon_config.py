import pytest

from aws_like_sdk.core.daemon_config import DaemonConfig
from aws_like_sdk.core.exceptions.exceptions import InvalidDaemonAddressException


def test_default_and_single_address():
    config = DaemonConfig()
    assert (config.udp_ip, config.udp_port, config.tcp_ip, config.tcp_port) == ('127.0.0.1', 2000, '127.0.0.1', 2000)
    config = DaemonConfig('xray-daemon:3000')
    assert (config.udp_ip, config.udp_port, config.tcp_ip, config.tcp_port) == ('xray-daemon', 3000, 'xray-daemon', 3000)


@pytest.mark.parametrize('address', ['tcp:10.0.0.1:2001 udp:10.0.0.2:2002', 'udp:10.0.0.2:2002 tcp:10.0.0.1:2001'])
def test_two_token_form_either_order(address):
    config = DaemonConfig(address)
    assert (config.udp_ip, config.udp_port) == ('10.0.0.2', 2002)
    assert (config.tcp_ip, config.tcp_port) == ('10.0.0.1', 2001)


@pytest.mark.parametrize('address', ['127.0.0.1', '127.0.0.1:abc', ':2000', 'tcp:a:1 tcp:b:2', 'tcp:a:1 udp:b:2 x',
                                     'foo:a:1 udp:b:2', '127.0.0.1:99999', 'a:b:c'])
def test_invalid_addresses_raise(address):
    with pytest.raises(InvalidDaemonAddressException):
        DaemonConfig(address)


def test_environment_wins(monkeypatch):
    monkeypatch.setenv('AWS_XRAY_DAEMON_ADDRESS', '127.0.0.2:4000')
    assert DaemonConfig('127.0.0.1:2000').udp_port == 4000
