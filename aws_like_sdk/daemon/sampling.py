"""Centralized sampling served locally: GetSamplingRules and SamplingTargets from a rules file.

The rules file is JSON in either of two shapes:

* the GetSamplingRules response (``{"SamplingRuleRecords": [{"SamplingRule": {...}}]}``),
  a bare list of such records, or a list of ``SamplingRule`` objects;
* the SDK's local sampling rules, version 1 or 2 (``{"version": 2, "default": {...},
  "rules": [...]}``), converted rule by rule in file order.

The file is re-read when its modification time changes, and ``LastRuleModification``
tells the SDKs to fetch the new rules.
"""
import json
import logging
import math
import os
import re
import threading
import time
from typing import Any, Dict, List, Optional

log = logging.getLogger(__name__)

#: The X-Ray service's own default: one request a second, then 5 %.
DEFAULT_RULE = {
    'RuleName': 'Default', 'RuleARN': 'arn:aws:xray:local:000000000000:sampling-rule/Default',
    'ResourceARN': '*', 'Priority': 10000, 'FixedRate': 0.05, 'ReservoirSize': 1,
    'ServiceName': '*', 'ServiceType': '*', 'Host': '*', 'HTTPMethod': '*', 'URLPath': '*',
    'Version': 1, 'Attributes': {},
}
QUOTA_TTL = 60        # seconds a reservoir quota stays valid
TARGET_INTERVAL = 10  # seconds between SDK target reports
_CLIENT_WINDOW = 60   # a client that has not reported for this long no longer shares the reservoir


class SamplingRulesError(ValueError):
    """The rules file cannot be read or has the wrong shape."""


def _rule_name(text: Any, fallback: str) -> str:
    name = re.sub(r'[^A-Za-z0-9_-]+', '-', str(text or '')).strip('-')[:32]
    return name or fallback


def _from_local(manifest: Dict[str, Any]) -> List[Dict[str, Any]]:
    version = manifest.get('version')
    if version not in (1, 2):
        raise SamplingRulesError('local rules need "version": 1 or 2')
    default = manifest.get('default')
    if not isinstance(default, dict):
        raise SamplingRulesError('local rules need a "default" object')
    host_key = 'host' if version == 2 else 'service_name'
    rules = []
    for position, rule in enumerate(manifest.get('rules') or [], start=1):
        if not isinstance(rule, dict):
            raise SamplingRulesError('rule %d is not an object' % position)
        rules.append(dict(DEFAULT_RULE, RuleName=_rule_name(rule.get('description'), 'rule-%d' % position),
                          RuleARN='arn:aws:xray:local:000000000000:sampling-rule/rule-%d' % position,
                          Priority=position, FixedRate=rule.get('rate'), ReservoirSize=rule.get('fixed_target'),
                          Host=rule.get(host_key, '*'), HTTPMethod=rule.get('http_method', '*'),
                          URLPath=rule.get('url_path', '*')))
    rules.append(dict(DEFAULT_RULE, FixedRate=default.get('rate'), ReservoirSize=default.get('fixed_target')))
    return rules


def parse_rules(data: Any) -> List[Dict[str, Any]]:
    """Normalise a parsed rules file into a list of ``SamplingRule`` objects.

    Args:
        data: the parsed JSON of either accepted shape.

    Returns:
        Validated rules; a ``Default`` rule is appended when the file has none.

    Raises:
        SamplingRulesError: for anything else.
    """
    if isinstance(data, dict) and 'version' in data:
        rules = _from_local(data)
    else:
        records = data.get('SamplingRuleRecords') if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise SamplingRulesError('expected SamplingRuleRecords, a list of rules, or local rules')
        rules = []
        for record in records:
            rule = record.get('SamplingRule', record) if isinstance(record, dict) else None
            if not isinstance(rule, dict):
                raise SamplingRulesError('each record must be an object')
            merged = dict(DEFAULT_RULE, RuleARN='arn:aws:xray:local:000000000000:sampling-rule/%s'
                          % rule.get('RuleName'))
            merged.update(rule)
            rules.append(merged)
    for rule in rules:
        _validate(rule)
    if not any(r['RuleName'] == 'Default' for r in rules):
        rules.append(dict(DEFAULT_RULE))
    names = [r['RuleName'] for r in rules]
    if len(set(names)) != len(names):
        raise SamplingRulesError('rule names must be unique')
    return sorted(rules, key=lambda r: (r['Priority'], r['RuleName']))


def _validate(rule: Dict[str, Any]) -> None:
    name = rule.get('RuleName')
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise SamplingRulesError('RuleName must be 1-32 characters: %r' % (name,))
    rate = rule.get('FixedRate')
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise SamplingRulesError('%s: FixedRate/rate must be a number in 0..1' % name)
    size = rule.get('ReservoirSize')
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise SamplingRulesError('%s: ReservoirSize/fixed_target must be an integer >= 0' % name)
    priority = rule.get('Priority')
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10000:
        raise SamplingRulesError('%s: Priority must be an integer in 1..10000' % name)
    for key in ('ServiceName', 'ServiceType', 'Host', 'HTTPMethod', 'URLPath', 'ResourceARN'):
        if not isinstance(rule.get(key), str):
            raise SamplingRulesError('%s: %s must be a string' % (name, key))


class SamplingService:
    """Answers the two sampling operations; thread-safe.

    Args:
        rules_path: the rules file, or None for the built-in default rule.
    """

    def __init__(self, rules_path: Optional[str] = None) -> None:
        self._path = rules_path
        self._lock = threading.Lock()
        self._mtime: Optional[float] = None
        self._modified = time.time()
        self._rules: List[Dict[str, Any]] = [dict(DEFAULT_RULE)]
        self._clients: Dict[str, Dict[str, float]] = {}  # rule name -> client id -> last report
        self._stats: Dict[str, Dict[str, int]] = {}
        if rules_path:
            self._load(strict=True)

    def _load(self, strict: bool = False) -> None:
        try:
            mtime = os.stat(self._path).st_mtime
            if mtime == self._mtime:
                return
            with open(self._path, encoding='utf-8') as handle:
                rules = parse_rules(json.load(handle))
        except (OSError, ValueError) as exc:
            if strict:
                raise SamplingRulesError('cannot use sampling rules %s: %s' % (self._path, exc)) from None
            log.warning('keeping previous sampling rules: %s: %s', self._path, exc)
            return
        self._rules, self._mtime, self._modified = rules, mtime, time.time()
        log.info('loaded %d sampling rules from %s', len(rules), self._path)

    def _refresh(self) -> None:
        if self._path:
            self._load()

    def rules(self) -> List[Dict[str, Any]]:
        """The current rules, sorted by priority."""
        with self._lock:
            self._refresh()
            return [dict(r) for r in self._rules]

    def get_sampling_rules(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """The GetSamplingRules response body (one page; NextToken is ignored)."""
        with self._lock:
            self._refresh()
            created = self._modified
            records = [{'SamplingRule': dict(r), 'CreatedAt': created, 'ModifiedAt': created}
                       for r in self._rules]
        return {'SamplingRuleRecords': records}

    def get_sampling_targets(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """The GetSamplingTargets response body for a statistics report.

        Each rule's reservoir is shared evenly between the clients that reported on it in
        the last minute, so several local processes together respect ``ReservoirSize``.
        """
        documents = request.get('SamplingStatisticsDocuments')
        if not isinstance(documents, list):
            raise ValueError('SamplingStatisticsDocuments must be a list')
        now = time.time()
        targets, unprocessed = [], []
        with self._lock:
            self._refresh()
            by_name = {r['RuleName']: r for r in self._rules}
            for doc in documents:
                name = doc.get('RuleName') if isinstance(doc, dict) else None
                client = doc.get('ClientID') if isinstance(doc, dict) else None
                if name not in by_name:
                    unprocessed.append({'RuleName': name, 'ErrorCode': '400', 'Message': 'Unknown rule'})
                    continue
                if not isinstance(client, str) or len(client) != 24:
                    unprocessed.append({'RuleName': name, 'ErrorCode': '400',
                                        'Message': 'ClientID must be 24 characters'})
                    continue
                stats = self._stats.setdefault(name, {'RequestCount': 0, 'SampledCount': 0, 'BorrowCount': 0})
                for key in stats:
                    value = doc.get(key)
                    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                        stats[key] += value
                clients = self._clients.setdefault(name, {})
                clients[client] = now
                for other, seen in list(clients.items()):
                    if now - seen > _CLIENT_WINDOW:
                        del clients[other]
                rule = by_name[name]
                targets.append({'RuleName': name, 'FixedRate': rule['FixedRate'],
                                'ReservoirQuota': int(math.ceil(rule['ReservoirSize'] / len(clients))),
                                'ReservoirQuotaTTL': now + QUOTA_TTL, 'Interval': TARGET_INTERVAL})
            modified = self._modified
        return {'SamplingTargetDocuments': targets, 'LastRuleModification': modified,
                'UnprocessedStatistics': unprocessed}

    def statistics(self) -> Dict[str, Dict[str, int]]:
        """Request/sampled/borrow totals reported by SDKs, per rule."""
        with self._lock:
            return {name: dict(values) for name, values in self._stats.items()}
