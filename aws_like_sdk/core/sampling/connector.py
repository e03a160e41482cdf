"""HTTP calls to the X-Ray daemon's sampling proxy (its TCP address).

The daemon signs and forwards whatever it receives, so requests go out unsigned, as rest-json, with the
standard library's HTTP client and short timeouts. Every call runs inside
:func:`~aws_like_sdk.core.suppression.suppress_tracing` so patched HTTP libraries never trace it.
"""
import binascii
import datetime
import http.client
import json
import logging
import math
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ..suppression import suppress_tracing
from .sampling_rule import SamplingRule

log = logging.getLogger(__name__)

__all__ = ['ServiceConnector', 'SamplingConnectorError']

DEFAULT_TIMEOUT = 2.0
"""Seconds allowed for connecting to and for each read from the daemon."""

MAX_RULE_PAGES = 100
"""Upper bound on followed ``NextToken`` pages, in case a proxy keeps returning a token."""

_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class SamplingConnectorError(Exception):
    """The daemon could not be reached or answered something unusable."""


def _new_client_id() -> str:
    # 12 random bytes as 24 hex characters: the exact ClientID length the API requires.
    return binascii.hexlify(os.urandom(12)).decode('ascii')


def _to_epoch(value: Any) -> Optional[float]:
    """Accept epoch numbers (rest-json) and datetimes (a botocore client) alike."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        # JSON's 1e999 parses as infinity and 1 followed by 400 zeros as an int no float holds;
        # int() or float() of them would raise in the poller.
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        try:
            number = float(value)
            return number if math.isfinite(number) else None
        except ValueError:
            try:
                return datetime.datetime.fromisoformat(value.replace('Z', '+00:00')).timestamp()
            except ValueError:
                return None
    return None


def _optional_number(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN or infinity from a broken proxy is no target at all
    return value


class _OutageLog:
    """Logs an outage once when it starts and once when it ends, instead of on every poll."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False

    def failure(self, endpoint: str, operation: str, error: Exception) -> None:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            log.warning('X-Ray daemon sampling API at %s is unavailable (%s: %s); local sampling rules decide '
                        'until it answers. Further failures are logged at DEBUG.', endpoint, operation, error)
        else:
            log.debug('X-Ray daemon sampling API at %s still unavailable (%s: %s).', endpoint, operation, error)

    def success(self, endpoint: str) -> None:
        with self._lock:
            recovered, self._down = self._down, False
        if recovered:
            log.info('X-Ray daemon sampling API at %s is answering again.', endpoint)

    @property
    def down(self) -> bool:
        return self._down


class ServiceConnector:
    """Fetches sampling rules and targets through the daemon.

    Args:
        ip: the daemon's TCP host.
        port: the daemon's TCP port.
        timeout: seconds for connect and for each read.
        clock: epoch-seconds clock used for statistics timestamps; injectable for tests.
    """

    def __init__(self, ip: str = '127.0.0.1', port: int = 2000, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.time) -> None:
        self._ip = ip
        self._port = int(port)
        self._timeout = timeout
        self._clock = clock
        self._client_id = _new_client_id()
        self._context: Any = None
        self._xray_client: Any = None
        self._outage = _OutageLog()

    # -- configuration -------------------------------------------------------------------------------

    def setup_xray_client(self, ip: str, port: int, client: Any = None) -> None:
        """Point the connector at a daemon address.

        Args:
            ip: the daemon's TCP host.
            port: the daemon's TCP port.
            client: optional botocore-style X-Ray client (``get_sampling_rules`` / ``get_sampling_targets``)
                to use instead of plain HTTP, e.g. a signed client that calls X-Ray directly.
        """
        self._ip = ip
        self._port = int(port)
        self._xray_client = client

    @property
    def endpoint(self) -> str:
        """``host:port`` of the daemon's TCP address."""
        return '%s:%d' % (self._ip, self._port)

    @property
    def context(self) -> Any:
        """The recorder context; kept for compatibility (suppression makes a fake segment unnecessary)."""
        return self._context

    @context.setter
    def context(self, value: Any) -> None:
        self._context = value

    @property
    def xray_client(self) -> Any:
        """The botocore-style client in use, or None when talking HTTP to the daemon directly."""
        return self._xray_client

    @xray_client.setter
    def xray_client(self, value: Any) -> None:
        self._xray_client = value

    @property
    def client_id(self) -> str:
        """The 24-hex-character ClientID reported with statistics (one per process)."""
        return self._client_id

    @property
    def timeout(self) -> float:
        """Seconds allowed for connect and for each read."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._timeout = value

    @property
    def daemon_unavailable(self) -> bool:
        """Whether the last call failed."""
        return self._outage.down

    # -- operations ----------------------------------------------------------------------------------

    def fetch_sampling_rules(self) -> List[SamplingRule]:
        """Fetch every usable sampling rule, following ``NextToken`` pages.

        Returns:
            The rules X-Ray SDKs may use (``Version`` 1, ``ResourceARN`` ``*``, a ``ServiceType``, no
            ``Attributes``), unsorted.

        Raises:
            SamplingConnectorError: if the daemon is unreachable or answers with an error or garbage.
        """
        records: List[Any] = []
        token: Optional[str] = None
        seen_tokens = set()
        for _ in range(MAX_RULE_PAGES):
            body: Dict[str, Any] = {'NextToken': token} if token else {}
            page = self._call('GetSamplingRules', '/GetSamplingRules', body)
            page_records = page.get('SamplingRuleRecords') or []
            if not isinstance(page_records, list):
                raise self._fail('GetSamplingRules', SamplingConnectorError('SamplingRuleRecords is not a list'))
            records.extend(page_records)
            token = page.get('NextToken')
            if not token or not isinstance(token, str) or token in seen_tokens:
                break
            seen_tokens.add(token)
        else:
            log.warning('Stopped following GetSamplingRules pages after %d pages.', MAX_RULE_PAGES)
        rules = []
        for record in records:
            rule = self._parse_rule(record)
            if rule is not None:
                rules.append(rule)
        log.debug('Fetched %d usable sampling rule(s) out of %d record(s).', len(rules), len(records))
        return rules

    def fetch_sampling_target(self, rules: Iterable[SamplingRule]
                              ) -> Tuple[Dict[str, Dict[str, Any]], int]:
        """Report rule statistics and fetch new targets.

        Args:
            rules: the rules to report; their statistics are snapshotted (reset) here.

        Returns:
            ``(targets, last_rule_modification)`` where targets maps rule name to
            ``{'rate', 'quota', 'TTL', 'interval'}`` (None for absent members) and the second item is the
            epoch second of the last rule change on the service side (0 if not given).

        Raises:
            SamplingConnectorError: if the daemon is unreachable or answers with an error or garbage.
        """
        now = int(self._clock())
        documents = []
        for rule in rules:
            stats = rule.snapshot_statistics()
            documents.append({
                'RuleName': rule.name,
                'ClientID': self._client_id,
                'Timestamp': now,
                'RequestCount': stats['request_count'],
                'BorrowCount': stats['borrow_count'],
                'SampledCount': stats['sampled_count'],
            })
        response = self._call('GetSamplingTargets', '/SamplingTargets',
                              {'SamplingStatisticsDocuments': documents})
        targets: Dict[str, Dict[str, Any]] = {}
        raw_targets = response.get('SamplingTargetDocuments') or []
        if not isinstance(raw_targets, list):
            raise self._fail('GetSamplingTargets', SamplingConnectorError('SamplingTargetDocuments is not a list'))
        for doc in raw_targets:
            if not isinstance(doc, Mapping) or not isinstance(doc.get('RuleName'), str):
                continue
            quota = _optional_number(doc.get('ReservoirQuota'))
            targets[doc['RuleName']] = {
                'rate': _optional_number(doc.get('FixedRate')),
                'quota': int(quota) if quota is not None else None,
                'TTL': _to_epoch(doc.get('ReservoirQuotaTTL')),
                'interval': _optional_number(doc.get('Interval')),
            }
        unprocessed_list = response.get('UnprocessedStatistics')
        for unprocessed in unprocessed_list if isinstance(unprocessed_list, list) else ():
            if isinstance(unprocessed, Mapping):
                log.debug('X-Ray did not process statistics for rule %s: %s %s', unprocessed.get('RuleName'),
                          unprocessed.get('ErrorCode'), unprocessed.get('Message'))
        modified = _to_epoch(response.get('LastRuleModification'))
        return targets, int(modified) if modified is not None else 0

    # -- plumbing ------------------------------------------------------------------------------------

    @staticmethod
    def _parse_rule(record: Any) -> Optional[SamplingRule]:
        raw = record.get('SamplingRule') if isinstance(record, Mapping) else None
        if not isinstance(raw, Mapping):
            return None
        # Rules for other resources, newer rule versions or attribute filters are not ours to apply.
        if raw.get('Version') != 1 or raw.get('ResourceARN') != '*' or not raw.get('ServiceType') \
                or raw.get('Attributes'):
            return None
        name = raw.get('RuleName')
        priority = raw.get('Priority')
        rate = raw.get('FixedRate')
        size = raw.get('ReservoirSize')
        if not isinstance(name, str) or not name or isinstance(priority, bool) or not isinstance(priority, int) \
                or _optional_number(rate) is None or isinstance(size, bool) or not isinstance(size, int):
            log.debug('Ignoring malformed sampling rule record %r.', raw)
            return None
        return SamplingRule(name=name, priority=priority, rate=rate, reservoir_size=size,
                            host=raw.get('Host'), method=raw.get('HTTPMethod'), path=raw.get('URLPath'),
                            service=raw.get('ServiceName'), service_type=raw.get('ServiceType'))

    def _fail(self, operation: str, error: Exception) -> SamplingConnectorError:
        self._outage.failure(self.endpoint, operation, error)
        if isinstance(error, SamplingConnectorError):
            return error
        return SamplingConnectorError('%s: %s' % (operation, error))

    def _call(self, operation: str, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        with suppress_tracing():
            try:
                if self._xray_client is not None:
                    result = self._call_client(operation, body)
                else:
                    result = self._post(path, body)
            except SamplingConnectorError as exc:
                raise self._fail(operation, exc) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise self._fail(operation, exc) from exc
        self._outage.success(self.endpoint)
        return result

    def _call_client(self, operation: str, body: Dict[str, Any]) -> Dict[str, Any]:
        method = {'GetSamplingRules': 'get_sampling_rules',
                  'GetSamplingTargets': 'get_sampling_targets'}[operation]
        try:
            result = getattr(self._xray_client, method)(**body)
        except Exception as exc:  # botocore raises its own hierarchy; all mean "no answer"
            raise SamplingConnectorError('%s: %s' % (type(exc).__name__, exc)) from exc
        if not isinstance(result, Mapping):
            raise SamplingConnectorError('client returned %s' % type(result).__name__)
        return dict(result)

    def _post(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        payload = json.dumps(body, separators=(',', ':')).encode('utf-8')
        conn = http.client.HTTPConnection(self._ip, self._port, timeout=self._timeout)
        try:
            conn.request('POST', path, body=payload,
                         headers={'Content-Type': 'application/json', 'Accept': 'application/json'})
            response = conn.getresponse()
            raw = response.read(_MAX_RESPONSE_BYTES + 1)
            status = response.status
        except socket.timeout as exc:
            raise SamplingConnectorError('timed out after %.1f s' % self._timeout) from exc
        finally:
            conn.close()
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise SamplingConnectorError('response larger than %d bytes' % _MAX_RESPONSE_BYTES)
        try:
            document = json.loads(raw.decode('utf-8')) if raw.strip() else {}
        except ValueError:
            document = None
        if status != 200:
            detail = ''
            if isinstance(document, Mapping):
                detail = ' %s: %s' % (document.get('__type', ''), document.get('message') or document.get('Message', ''))
            raise SamplingConnectorError('HTTP %d%s' % (status, detail))
        if not isinstance(document, dict):
            raise SamplingConnectorError('response is not a JSON object: %r' % raw[:64])
        return document

    def _after_fork_in_child(self) -> None:
        # Statistics from two processes under one ClientID would be merged by X-Ray.
        self._client_id = _new_client_id()
        self._outage = _OutageLog()
