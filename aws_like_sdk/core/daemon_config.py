"""Parse the daemon address into its UDP (segments) and TCP (sampling API) endpoints."""
import os
from typing import Optional, Tuple

from .exceptions.exceptions import InvalidDaemonAddressException

DAEMON_ADDRESS_KEY = 'AWS_XRAY_DAEMON_ADDRESS'
DEFAULT_ADDRESS = '127.0.0.1:2000'


def _split_endpoint(text: str, original: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(':')
    if not sep or not host or ':' in host:
        raise InvalidDaemonAddressException('Invalid daemon address %r: expected host:port.' % original)
    try:
        port_number = int(port)
    except ValueError:
        raise InvalidDaemonAddressException('Invalid daemon address %r: port %r is not an integer.'
                                            % (original, port)) from None
    if not 0 < port_number < 65536:
        raise InvalidDaemonAddressException('Invalid daemon address %r: port out of range.' % original)
    return host, port_number


def parse_daemon_address(address: str) -> Tuple[Tuple[str, int], Tuple[str, int]]:
    """Return ``((udp_ip, udp_port), (tcp_ip, tcp_port))`` for either accepted format.

    Raises:
        InvalidDaemonAddressException: for anything but ``host:port`` or
        ``tcp:host:port udp:host:port`` (either order).
    """
    if not isinstance(address, str) or not address.strip():
        raise InvalidDaemonAddressException('Invalid daemon address %r.' % (address,))
    tokens = address.split()
    if len(tokens) == 1:
        endpoint = _split_endpoint(tokens[0], address)
        return endpoint, endpoint
    if len(tokens) == 2:
        found = {}
        for token in tokens:
            kind, sep, rest = token.partition(':')
            if not sep or kind not in ('tcp', 'udp') or kind in found:
                raise InvalidDaemonAddressException(
                    'Invalid daemon address %r: expected "tcp:host:port udp:host:port".' % address)
            found[kind] = _split_endpoint(rest, address)
        return found['udp'], found['tcp']
    raise InvalidDaemonAddressException('Invalid daemon address %r: too many parts.' % address)


class DaemonConfig:
    """Daemon endpoints; ``AWS_XRAY_DAEMON_ADDRESS`` wins over the argument."""

    def __init__(self, daemon_address: Optional[str] = DEFAULT_ADDRESS) -> None:
        env = os.environ.get(DAEMON_ADDRESS_KEY)
        address = env if env else (daemon_address or DEFAULT_ADDRESS)
        (self._udp_ip, self._udp_port), (self._tcp_ip, self._tcp_port) = parse_daemon_address(address)

    @property
    def udp_ip(self) -> str:
        return self._udp_ip

    @property
    def udp_port(self) -> int:
        return self._udp_port

    @property
    def tcp_ip(self) -> str:
        return self._tcp_ip

    @property
    def tcp_port(self) -> int:
        return self._tcp_port
