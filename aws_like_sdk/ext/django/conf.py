"""The ``XRAY_RECORDER`` settings dict of a Django project.

Precedence: for the three keys named like environment variables (``AWS_XRAY_DAEMON_ADDRESS``,
``AWS_XRAY_CONTEXT_MISSING``, ``AWS_XRAY_TRACING_NAME``) a non-empty environment variable wins over
the user setting, which wins over the default. For every other key the user setting wins when it
is not None. The module-level :data:`settings` is rebuilt whenever Django signals that
``XRAY_RECORDER`` changed (``override_settings`` in tests, autoreload).
"""
import difflib
import logging
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from django.conf import settings as django_settings
from django.core.signals import setting_changed

log = logging.getLogger(__name__)

XRAY_NAMESPACE = 'XRAY_RECORDER'

DEFAULTS: Dict[str, Any] = {
    # Keys named like environment variables: the variable, when set, wins over the setting.
    'AWS_XRAY_TRACING_NAME': None, 'AWS_XRAY_DAEMON_ADDRESS': '127.0.0.1:2000',
    'AWS_XRAY_CONTEXT_MISSING': 'LOG_ERROR',
    # Recorder configuration.
    'SAMPLING': True, 'SAMPLER': None, 'SAMPLING_RULES': None, 'PLUGINS': (), 'DYNAMIC_NAMING': None,
    'STREAMING_THRESHOLD': None, 'MAX_TRACE_BACK': None, 'STREAM_SQL': True,
    # What the app config instruments at start-up.
    'AUTO_INSTRUMENT': True, 'PATCH_MODULES': [], 'IGNORE_MODULE_PATTERNS': [],
    'AUTO_PATCH_PARENT_SEGMENT_NAME': None, 'URLS_AS_ANNOTATION': 'LAMBDA',
}

SUPPORTED_ENV_VARS: Tuple[str, ...] = (
    'AWS_XRAY_DAEMON_ADDRESS',
    'AWS_XRAY_CONTEXT_MISSING',
    'AWS_XRAY_TRACING_NAME',
)

URLS_AS_ANNOTATION_CHOICES = ('LAMBDA', 'ALL', 'NONE')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value)


def _is_daemon_address(value: Any) -> bool:
    from ...core.daemon_config import DaemonConfig
    if not isinstance(value, str):
        return False
    try:
        DaemonConfig(value)
    except Exception:  # noqa: BLE001 - any parse failure means "invalid"
        return False
    return True


def _is_patterns(value: Any) -> bool:
    if not _is_str_list(value):
        return False
    try:
        for pattern in value:
            re.compile(pattern)
    except re.error:
        return False
    return True


def _is_context_missing(value: Any) -> bool:
    from ...core.context import SUPPORTED_CONTEXT_MISSING
    return value in SUPPORTED_CONTEXT_MISSING


# key -> (check, what a valid value looks like). None values always pass: they mean "not set".
VALIDATORS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    'AWS_XRAY_DAEMON_ADDRESS': (_is_daemon_address, "'host:port' or 'tcp:host:port udp:host:port'"),
    'AUTO_INSTRUMENT': (lambda v: isinstance(v, bool), 'True or False'),
    'AWS_XRAY_CONTEXT_MISSING': (_is_context_missing, 'RUNTIME_ERROR, LOG_ERROR or IGNORE_ERROR'),
    'PLUGINS': (lambda v: isinstance(v, str) or _is_str_list(v), 'a tuple of plugin names'),
    'SAMPLING': (lambda v: isinstance(v, bool), 'True or False'),
    'SAMPLING_RULES': (lambda v: isinstance(v, (dict, str, os.PathLike)), 'a dict or the path of a JSON file'),
    'SAMPLER': (lambda v: callable(getattr(v, 'should_trace', None)), 'an object with should_trace()'),
    'AWS_XRAY_TRACING_NAME': (lambda v: isinstance(v, str), 'a string'),
    'DYNAMIC_NAMING': (lambda v: isinstance(v, str) or callable(getattr(v, 'get_name', None)),
                       'a host name pattern or an object with get_name()'),
    'STREAMING_THRESHOLD': (_is_int, 'an integer >= 0'),
    'MAX_TRACE_BACK': (_is_int, 'an integer >= 0'),
    'STREAM_SQL': (lambda v: isinstance(v, bool) or v == 'raw', "True, False or 'raw'"),
    'PATCH_MODULES': (lambda v: isinstance(v, str) or _is_str_list(v), 'a list of module names'),
    'AUTO_PATCH_PARENT_SEGMENT_NAME': (lambda v: isinstance(v, str) and bool(v), 'a segment name'),
    'IGNORE_MODULE_PATTERNS': (_is_patterns, 'a list of regular expressions'),
    'URLS_AS_ANNOTATION': (lambda v: isinstance(v, str) and v.upper() in URLS_AS_ANNOTATION_CHOICES,
                           "'LAMBDA', 'ALL' or 'NONE'"),
}

# A lone string where a sequence is expected is almost always one name, not a list of letters.
_AS_TUPLE = ('PLUGINS', 'PATCH_MODULES', 'IGNORE_MODULE_PATTERNS')


class XRaySettings:
    """Read-only view of ``settings.XRAY_RECORDER`` with environment precedence and defaults.

    Attribute access (``settings.SAMPLING``) returns the effective value of a key; an unknown key
    raises ``AttributeError('Invalid setting: <key>')``. Values are cached after the first access;
    :func:`reload_settings` builds a fresh instance when the Django setting changes.

    Args:
        user_settings: the settings dict to use instead of ``django.conf.settings.XRAY_RECORDER``.
    """

    def __init__(self, user_settings: Optional[Mapping[str, Any]] = None) -> None:
        self.defaults = DEFAULTS
        self._given = user_settings or None

    @property
    def user_settings(self) -> Mapping[str, Any]:
        """The raw ``XRAY_RECORDER`` dict (empty when the project does not define it)."""
        if '_user_settings' not in self.__dict__:
            value = self._given if self._given is not None else getattr(django_settings, XRAY_NAMESPACE, None)
            if value is not None and not isinstance(value, Mapping):
                log.error('settings.%s must be a dict, not %s; using the defaults.',
                          XRAY_NAMESPACE, type(value).__name__)
                value = None
            self._user_settings = value or {}
        return self._user_settings

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith('_') or attr not in DEFAULTS:
            raise AttributeError('Invalid setting: %s' % attr)
        value = self._lookup(attr)
        setattr(self, attr, value)
        return value

    def _lookup(self, attr: str) -> Any:
        if attr in SUPPORTED_ENV_VARS:
            # An empty variable is treated as unset, so `export AWS_XRAY_TRACING_NAME=` cannot blank a name.
            env_value = os.environ.get(attr)
            if env_value:
                return env_value
        user_value = self.user_settings.get(attr)
        return user_value if user_value is not None else DEFAULTS[attr]

    def unknown_keys(self) -> List[str]:
        """Keys of the user settings that are not settings of this extension."""
        return [key for key in self.user_settings if key not in DEFAULTS]

    def describe_unknown_key(self, key: Any) -> str:
        """A message naming ``key`` and, when it looks like a typo, the key that was probably meant."""
        message = 'Unknown key %r in settings.%s.' % (key, XRAY_NAMESPACE)
        close = difflib.get_close_matches(str(key).upper(), list(DEFAULTS), n=1)
        if close:
            message += ' Did you mean %r?' % close[0]
        return message + ' Valid keys: %s.' % ', '.join(sorted(DEFAULTS))

    def validated(self, attr: str) -> Any:
        """The effective value of ``attr``, or its default (with a warning naming the key) when invalid."""
        value = getattr(self, attr)
        if value is None:
            return None
        if attr in _AS_TUPLE and isinstance(value, str):
            value = (value,)
        check, expected = VALIDATORS[attr]
        try:
            valid = check(value)
        except Exception:  # noqa: BLE001 - a value that breaks its check is invalid
            valid = False
        if valid:
            return value.upper() if attr == 'URLS_AS_ANNOTATION' else value
        source = 'environment variable' if attr in SUPPORTED_ENV_VARS and os.environ.get(attr) else \
            'settings.%s[%r]' % (XRAY_NAMESPACE, attr)
        log.warning('Invalid value %r for %s (expected %s); using the default %r.', value, source, expected,
                    DEFAULTS[attr])
        return DEFAULTS[attr]


settings = XRaySettings()


def reload_settings(*args: Any, **kwargs: Any) -> None:
    """Rebuild :data:`settings` when Django's ``XRAY_RECORDER`` setting changes.

    Connected to ``django.core.signals.setting_changed``. The recorder itself is configured once,
    in ``XRayConfig.ready()``; request-time keys such as ``URLS_AS_ANNOTATION`` follow the change.
    """
    global settings
    if kwargs.get('setting') == XRAY_NAMESPACE:
        settings = XRaySettings(kwargs.get('value'))


setting_changed.connect(reload_settings, dispatch_uid='aws_like_sdk.ext.django.conf.reload_settings')
