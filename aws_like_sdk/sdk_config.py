"""The process-wide enable switch (``AWS_XRAY_SDK_ENABLED``)."""
import logging
import os
from typing import Optional

log = logging.getLogger(__name__)

_TRUE = frozenset(('y', 'yes', 't', 'true', 'on', '1'))
_FALSE = frozenset(('n', 'no', 'f', 'false', 'off', '0'))


def _parse_flag(raw) -> bool:
    if isinstance(raw, bytes):
        raw = raw.decode('utf-8', errors='replace')
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    log.warning('Invalid literal %r for %s; the SDK stays enabled.', raw, SDKConfig.XRAY_ENABLED_KEY)
    return True


# os.environ.get encodes the key and decodes the value on every call; this runs on every recorder
# entry point, so read CPython's underlying dict directly when it is there (same data, no copies).
_ENV_KEY = 'AWS_XRAY_SDK_ENABLED'
_environ_data = getattr(os.environ, '_data', None)
if isinstance(_environ_data, dict) and hasattr(os.environ, 'encodekey'):
    _ENV_KEY_RAW = os.environ.encodekey(_ENV_KEY)
    _environ_get = _environ_data.get
else:  # pragma: no cover - other Python implementations
    _ENV_KEY_RAW = _ENV_KEY
    _environ_get = os.environ.get


class SDKConfig:
    """Global enable switch consulted at the edges (recorder entry points and ``patch``).

    The environment variable is read on every call, so tests and applications that set
    ``AWS_XRAY_SDK_ENABLED`` after import are honoured (upstream caches the first read).
    When the variable is set it wins over :meth:`set_sdk_enabled`.
    """

    XRAY_ENABLED_KEY = 'AWS_XRAY_SDK_ENABLED'
    DISABLED_ENTITY_NAME = 'dummy'

    __SDK_ENABLED: bool = True
    # (raw env string, parsed) so repeated calls do not re-parse or re-warn.
    __env_cache: Optional[tuple] = None

    @classmethod
    def sdk_enabled(cls) -> bool:
        """Return whether tracing is enabled right now."""
        raw = _environ_get(_ENV_KEY_RAW)
        if raw is None:
            return cls.__SDK_ENABLED
        cached = cls.__env_cache
        if cached is not None and cached[0] == raw:
            return cached[1]
        parsed = _parse_flag(raw)
        cls.__env_cache = (raw, parsed)
        return parsed

    @classmethod
    def set_sdk_enabled(cls, value: bool) -> None:
        """Enable or disable the SDK; ignored (with a debug log) while the env var is set."""
        if os.environ.get(cls.XRAY_ENABLED_KEY) is not None:
            log.debug('%s is set in the environment; set_sdk_enabled(%r) ignored.', cls.XRAY_ENABLED_KEY, value)
            return
        if not isinstance(value, bool):
            log.warning('set_sdk_enabled expects a bool, got %r; enabling the SDK.', value)
            value = True
        cls.__SDK_ENABLED = value
