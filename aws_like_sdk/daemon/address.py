"""Listening addresses: ``host:port`` parsing, ``AWS_XRAY_DAEMON_ADDRESS`` and the loopback check."""
import ipaddress
import os
import socket
from typing import Optional, Tuple

Address = Tuple[str, int]

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 2000
ENV_ADDRESS = 'AWS_XRAY_DAEMON_ADDRESS'


class AddressError(ValueError):
    """An address the daemon cannot listen on or connect to."""


def parse_host_port(text: str) -> Address:
    """Parse ``host:port`` (port 0 means "pick a free one").

    Args:
        text: e.g. ``127.0.0.1:2000`` or ``localhost:0``.

    Returns:
        ``(host, port)``.

    Raises:
        AddressError: when the text is not ``host:port`` with a port in 0..65535.
    """
    host, sep, port = text.strip().rpartition(':')
    if not sep or not host:
        raise AddressError('expected host:port, got %r' % text)
    host = host.strip('[]')
    try:
        number = int(port)
    except ValueError:
        raise AddressError('port %r is not an integer' % port) from None
    if not 0 <= number <= 65535:
        raise AddressError('port %d out of range' % number)
    return host, number


def addresses_from_env(value: Optional[str]) -> Tuple[Optional[Address], Optional[Address]]:
    """Read ``AWS_XRAY_DAEMON_ADDRESS`` the way SDKs do: ``host:port`` or ``tcp:h:p udp:h:p``.

    Args:
        value: the variable's value, or None.

    Returns:
        ``(udp, tcp)``; both None when the value is empty.

    Raises:
        AddressError: for a malformed value.
    """
    if not value or not value.strip():
        return None, None
    tokens = value.split()
    if len(tokens) == 1:
        address = parse_host_port(tokens[0])
        return address, address
    if len(tokens) == 2:
        found = {}
        for token in tokens:
            kind, sep, rest = token.partition(':')
            if not sep or kind not in ('udp', 'tcp') or kind in found:
                raise AddressError('expected "tcp:host:port udp:host:port", got %r' % value)
            found[kind] = parse_host_port(rest)
        return found['udp'], found['tcp']
    raise AddressError('too many parts in %r' % value)


def resolve_addresses(udp: Optional[str], tcp: Optional[str]) -> Tuple[Address, Address]:
    """Choose the listening addresses: flags first, then the environment, then 127.0.0.1:2000.

    Args:
        udp: the ``--udp`` flag value, or None.
        tcp: the ``--tcp`` flag value, or None.

    Returns:
        ``(udp_address, tcp_address)``.
    """
    env_udp, env_tcp = addresses_from_env(os.environ.get(ENV_ADDRESS))
    default = (DEFAULT_HOST, DEFAULT_PORT)
    udp_address = parse_host_port(udp) if udp else (env_udp or default)
    tcp_address = parse_host_port(tcp) if tcp else (env_tcp or default)
    return udp_address, tcp_address


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    if host.lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def format_address(address: Address) -> str:
    """``host:port``, bracketing IPv6 literals."""
    host, port = address
    return ('[%s]:%d' if ':' in host else '%s:%d') % (host, port)
