"""Sampling from a local JSON rules document.

This is the sampler in Lambda and the fallback of :class:`~aws_like_sdk.core.sampling.sampler.DefaultSampler`
whenever no centralized rule is available.
"""
import functools
import json
import logging
import os
import pkgutil
import random
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from .... import global_sdk_config
from ...exceptions.exceptions import InvalidSamplingManifestError
from .._fork import register_after_fork
from .sampling_rule import SamplingRule

log = logging.getLogger(__name__)

__all__ = ['LocalSampler', 'SUPPORTED_RULE_VERSION', 'local_sampling_rule']

SUPPORTED_RULE_VERSION = (1, 2)

RulesSource = Union[Mapping[str, Any], str, 'os.PathLike[str]']


@functools.lru_cache(maxsize=1)
def _packaged_default_text() -> bytes:
    data = pkgutil.get_data(__name__, 'sampling_rule.json')
    if data is None:  # only if the package was installed without its data files
        raise InvalidSamplingManifestError('The packaged sampling_rule.json is missing.')
    return data


def default_rules() -> Dict[str, Any]:
    """Return a fresh copy of the packaged default rules document.

    Returns:
        ``{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": []}``.
    """
    return json.loads(_packaged_default_text())


def __getattr__(name: str) -> Any:
    # Loaded on first access rather than at import: importing the SDK reads no files.
    if name == 'local_sampling_rule':
        return default_rules()
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def _read_document(rules: RulesSource) -> Mapping[str, Any]:
    if isinstance(rules, Mapping):
        return rules
    if isinstance(rules, (str, os.PathLike)):
        try:
            with open(rules, encoding='utf-8') as handle:
                document = json.load(handle)
        except OSError as exc:
            raise InvalidSamplingManifestError('Cannot read sampling rules file %r: %s' % (str(rules), exc)) from exc
        except ValueError as exc:
            raise InvalidSamplingManifestError(
                'Sampling rules file %r is not valid JSON: %s' % (str(rules), exc)) from exc
        if not isinstance(document, Mapping):
            raise InvalidSamplingManifestError(
                'Sampling rules file %r must contain a JSON object.' % str(rules))
        return document
    raise InvalidSamplingManifestError(
        'Sampling rules must be a dict or a path to a JSON file, got %s.' % type(rules).__name__)


class LocalSampler:
    """Samples requests with rules from a local document.

    Rules are tried in document order and the first one whose host, method and path match decides; the
    default rule decides for everything else. A rule admits ``fixed_target`` requests per second, then a
    ``rate`` fraction of the rest.

    Args:
        rules: a rules document (dict) or a path to a JSON file; the packaged default when omitted.
        rng: random source for the ``rate`` draw; injectable for reproducible tests.
        clock: epoch-seconds clock for the reservoirs; injectable for tests.

    Raises:
        InvalidSamplingManifestError: if ``rules`` is not a valid document.
    """

    def __init__(self, rules: Optional[RulesSource] = None, *, rng: Optional[random.Random] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._random = rng if rng is not None else random.Random()
        self._clock = clock
        self._rules: Sequence[SamplingRule] = ()
        self._default_rule: Optional[SamplingRule] = None
        self.load_local_rules(default_rules() if rules is None else rules)
        register_after_fork(self)

    def start(self) -> None:
        """Do nothing: local sampling has no background work. Kept for sampler interface parity."""

    def stop(self, timeout: Optional[float] = None) -> None:
        """Do nothing: local sampling has no background work. Kept for sampler interface parity."""

    def should_trace(self, sampling_req: Optional[Mapping[str, Any]] = None) -> bool:
        """Decide whether to sample a request.

        Args:
            sampling_req: optional ``host``, ``method`` and ``path`` of the request; other keys are ignored.

        Returns:
            True to sample. Always False while the SDK is disabled.
        """
        if not global_sdk_config.sdk_enabled():
            return False
        if sampling_req is not None:
            # Missing attributes count as matches, so a request carrying only a service name takes the
            # first custom rule, as upstream does; no request at all goes straight to the default rule.
            host = sampling_req.get('host')
            method = sampling_req.get('method')
            path = sampling_req.get('path')
            for rule in self._rules:
                if rule.applies(host, method, path):
                    return self._decide(rule)
        return self._decide(self._default_rule)

    def _decide(self, rule: SamplingRule) -> bool:
        if rule.reservoir.take():
            return True
        return self._random.random() < rule.rate

    def load_local_rules(self, rules: RulesSource) -> None:
        """Replace the rules, validating the whole document first.

        Args:
            rules: a rules document (dict) or a path to a JSON file, version 1 or 2.

        Raises:
            InvalidSamplingManifestError: with what is wrong; the current rules are kept in that case.
        """
        document = _read_document(rules)
        version = document.get('version')
        if isinstance(version, bool) or version not in SUPPORTED_RULE_VERSION:
            raise InvalidSamplingManifestError(
                'Sampling rules "version" must be one of %s, got %r.' % (SUPPORTED_RULE_VERSION, version))
        if 'default' not in document:
            raise InvalidSamplingManifestError('Sampling rules document is missing the "default" rule.')
        default_rule = SamplingRule(document['default'], version=version, default=True, clock=self._clock)
        raw_rules = document.get('rules')
        if raw_rules is None:
            raw_rules = []
        if not isinstance(raw_rules, list):
            raise InvalidSamplingManifestError(
                'Sampling rules "rules" must be a list, got %s.' % type(raw_rules).__name__)
        parsed = tuple(SamplingRule(item, version=version, clock=self._clock) for item in raw_rules)
        # Swap both at once so a concurrent decision sees either the old or the new document.
        self._rules, self._default_rule = parsed, default_rule
        log.debug('Loaded %d local sampling rule(s) plus the default (version %d).', len(parsed), version)

    @property
    def rules(self) -> Sequence[SamplingRule]:
        """The custom rules in match order (the default rule excluded)."""
        return self._rules

    @property
    def default_rule(self) -> SamplingRule:
        """The rule that decides when no other rule matches."""
        assert self._default_rule is not None
        return self._default_rule

    def _after_fork_in_child(self) -> None:
        for rule in (*self._rules, self._default_rule):
            if rule is not None:
                rule.reservoir._after_fork_in_child()
