"""One rule of a local sampling document (version 1 or 2)."""
import numbers
import time
from typing import Any, Callable, Mapping, Optional

from ...exceptions.exceptions import InvalidSamplingManifestError
from ...utils.search_pattern import wildcard_match
from .reservoir import Reservoir

__all__ = ['SamplingRule']


def _describe(default: bool, rule_dict: Mapping[str, Any]) -> str:
    if default:
        return 'the default rule'
    desc = rule_dict.get('description') if isinstance(rule_dict, Mapping) else None
    return 'rule %r' % desc if isinstance(desc, str) and desc else 'a rule'


class SamplingRule:
    """A local sampling rule: a host/method/path filter, a per-second reservoir and a rate.

    Args:
        rule_dict: the rule as found in the JSON document.
        version: the document version; version 1 names the host field ``service_name``.
        default: whether this is the document's ``default`` rule, which must not filter.
        clock: epoch-seconds clock for the reservoir; injectable for tests.

    Raises:
        InvalidSamplingManifestError: for a missing, mistyped or out-of-range field.
    """

    # Field names of the JSON document (v1 names the host field service_name).
    HOST, SERVICE_NAME, METHOD, PATH = 'host', 'service_name', 'http_method', 'url_path'
    FIXED_TARGET, RATE = 'fixed_target', 'rate'

    def __init__(self, rule_dict: Mapping[str, Any], version: int = 2, default: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(rule_dict, Mapping):
            raise InvalidSamplingManifestError(
                'Each sampling rule must be a JSON object, got %s.' % type(rule_dict).__name__)
        self._version = version
        self._default = default
        what = _describe(default, rule_dict)
        host_key = self.SERVICE_NAME if version == 1 else self.HOST

        self._fixed_target = self._read_fixed_target(rule_dict, what)
        self._rate = self._read_rate(rule_dict, what)
        self._host = self._read_filter(rule_dict, host_key, what)
        self._method = self._read_filter(rule_dict, self.METHOD, what)
        self._path = self._read_filter(rule_dict, self.PATH, what)

        filters = (self._host, self._method, self._path)
        if default and any(filters):
            raise InvalidSamplingManifestError(
                'The default sampling rule must not define %s, %s or %s.' % (host_key, self.METHOD, self.PATH))
        if not default and not all(filters):
            missing = [key for key, value in zip((host_key, self.METHOD, self.PATH), filters) if not value]
            hint = ''
            if version == 1 and self.HOST in rule_dict:
                hint = ' (version 1 documents name the host field "service_name")'
            raise InvalidSamplingManifestError(
                'Sampling %s must define %s%s.' % (what, ', '.join(missing), hint))
        self._reservoir = Reservoir(self._fixed_target, clock=clock)

    def _read_fixed_target(self, rule_dict: Mapping[str, Any], what: str) -> int:
        if self.FIXED_TARGET not in rule_dict:
            raise InvalidSamplingManifestError('Sampling %s is missing "fixed_target".' % what)
        value = rule_dict[self.FIXED_TARGET]
        # bool is an int subclass; "fixed_target": true is a typo, not a count.
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value):
            raise InvalidSamplingManifestError(
                'Sampling %s: "fixed_target" must be a whole number, got %r.' % (what, value))
        if value < 0:
            raise InvalidSamplingManifestError(
                'Sampling %s: "fixed_target" must not be negative, got %r.' % (what, value))
        return int(value)

    def _read_rate(self, rule_dict: Mapping[str, Any], what: str) -> float:
        if self.RATE not in rule_dict:
            raise InvalidSamplingManifestError('Sampling %s is missing "rate".' % what)
        value = rule_dict[self.RATE]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidSamplingManifestError(
                'Sampling %s: "rate" must be a number between 0 and 1, got %r.' % (what, value))
        if not 0 <= value <= 1:
            raise InvalidSamplingManifestError(
                'Sampling %s: "rate" must be between 0 and 1, got %r.' % (what, value))
        return float(value)

    @staticmethod
    def _read_filter(rule_dict: Mapping[str, Any], key: str, what: str) -> Optional[str]:
        value = rule_dict.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidSamplingManifestError(
                'Sampling %s: "%s" must be a string, got %r.' % (what, key, value))
        return value

    def applies(self, host: Optional[str], method: Optional[str], path: Optional[str]) -> bool:
        """Return whether a request matches this rule.

        Matching is case-insensitive with ``*`` and ``?`` wildcards; an attribute the request does not
        supply counts as a match (a manually begun segment has no host, method or path). The default rule
        applies to everything.

        Args:
            host: the request's Host header.
            method: the HTTP method.
            path: the URL path.
        """
        if self._default:
            return True
        return ((not host or wildcard_match(self._host, host))
                and (not method or wildcard_match(self._method, method))
                and (not path or wildcard_match(self._path, path)))

    @property
    def fixed_target(self) -> int:
        """Requests sampled per second before ``rate`` applies."""
        return self._fixed_target

    @property
    def rate(self) -> float:
        """Fraction of requests sampled once the reservoir is used up."""
        return self._rate

    @property
    def host(self) -> Optional[str]:
        """Host pattern (``service_name`` in version 1 documents)."""
        return self._host

    @property
    def method(self) -> Optional[str]:
        """HTTP method pattern."""
        return self._method

    @property
    def path(self) -> Optional[str]:
        """URL path pattern."""
        return self._path

    @property
    def reservoir(self) -> Reservoir:
        """The per-second reservoir of ``fixed_target`` slots."""
        return self._reservoir

    @property
    def version(self) -> int:
        """The version of the document the rule came from."""
        return self._version

    def __repr__(self) -> str:
        return ('SamplingRule(host=%r, method=%r, path=%r, fixed_target=%r, rate=%r)'
                % (self._host, self._method, self._path, self._fixed_target, self._rate))
