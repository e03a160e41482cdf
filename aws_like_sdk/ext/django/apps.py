"""Django app config: configures the global recorder from ``settings.XRAY_RECORDER`` at start-up."""
import contextlib
import logging
import threading
from typing import Any, Dict, Optional

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from ...core.exceptions.exceptions import SegmentNameMissingException
from . import conf

log = logging.getLogger(__name__)

_ready_lock = threading.Lock()
_ready_done = False


def configure_recorder(recorder: Any, xray_settings: Optional[conf.XRaySettings] = None) -> None:
    """Apply an ``XRAY_RECORDER`` settings view to ``recorder``: configuration, module patches and
    the Django database and template instrumentation.

    Invalid values are logged (naming the key) and replaced by their defaults, so a typo in a value
    never stops the site from starting; two mistakes do, with a clear message: a key that does not
    exist, and a missing tracing name.

    Args:
        recorder: the recorder to configure (``XRayConfig.ready()`` passes the global ``xray_recorder``).
        xray_settings: the settings view; defaults to the module-level :data:`conf.settings`.

    Raises:
        ImproperlyConfigured: for an unknown key in ``XRAY_RECORDER`` (the message names it).
        SegmentNameMissingException: when neither ``AWS_XRAY_TRACING_NAME`` (environment or setting)
            nor a valid setting gives a name.
    """
    xs = xray_settings if xray_settings is not None else conf.settings
    unknown = xs.unknown_keys()
    if unknown:
        raise ImproperlyConfigured(' '.join(xs.describe_unknown_key(key) for key in unknown))
    name = xs.validated('AWS_XRAY_TRACING_NAME')
    if not name:
        raise SegmentNameMissingException(
            'Segment name is required: set XRAY_RECORDER["AWS_XRAY_TRACING_NAME"] in the Django settings '
            'or the AWS_XRAY_TRACING_NAME environment variable.')

    options: Dict[str, Any] = {
        'service': name,
        'daemon_address': xs.validated('AWS_XRAY_DAEMON_ADDRESS'),
        'sampling': xs.validated('SAMPLING'),
        'sampler': xs.validated('SAMPLER'),
        'context_missing': xs.validated('AWS_XRAY_CONTEXT_MISSING'),
        'dynamic_naming': xs.validated('DYNAMIC_NAMING'),
        'streaming_threshold': xs.validated('STREAMING_THRESHOLD'),
        'max_trace_back': xs.validated('MAX_TRACE_BACK'),
        'stream_sql': xs.validated('STREAM_SQL'),
    }
    _apply(recorder, None, **options)
    # Separate calls, after the sampler is in place: a broken rules file or a failing plugin is
    # reported without leaving the rest of the configuration unapplied.
    rules = xs.validated('SAMPLING_RULES')
    if rules:
        _apply(recorder, 'SAMPLING_RULES', sampling_rules=rules)
    plugins = xs.validated('PLUGINS')
    if plugins is not None:
        _apply(recorder, 'PLUGINS', plugins=tuple(plugins))

    modules = xs.validated('PATCH_MODULES')
    if modules:
        _patch_modules(recorder, list(modules), xs.validated('IGNORE_MODULE_PATTERNS') or [],
                       xs.validated('AUTO_PATCH_PARENT_SEGMENT_NAME'))

    if xs.validated('AUTO_INSTRUMENT'):
        from .db import patch_db
        from .templates import patch_template
        try:
            patch_db()
        except Exception:  # noqa: BLE001
            log.debug('Could not patch the Django database layer.', exc_info=True)
        try:
            patch_template()
        except Exception:  # noqa: BLE001
            log.debug('Could not patch Django template rendering.', exc_info=True)


def _apply(recorder: Any, key: Optional[str], **options: Any) -> None:
    try:
        recorder.configure(**options)
    except Exception:  # noqa: BLE001 - tracing configuration must not stop the site from starting
        log.error('Could not apply XRAY_RECORDER %s %r; tracing continues with the previous values.',
                  key or 'settings', options, exc_info=True)


def _patch_modules(recorder: Any, modules: list, ignore_patterns: list, parent_name: Optional[str]) -> None:
    from ...core import patch
    # Local modules patched here may run code at import; a parent segment gives those calls a home.
    scope = recorder.in_segment(parent_name) if parent_name else contextlib.nullcontext()
    with scope:
        patch(modules, ignore_module_patterns=ignore_patterns)


class XRayConfig(AppConfig):
    """Add ``'aws_like_sdk.ext.django'`` to ``INSTALLED_APPS`` to configure tracing from settings."""

    name = 'aws_like_sdk.ext.django'
    verbose_name = 'aws_like_sdk X-Ray tracing'

    def ready(self) -> None:
        """Configure the global recorder once per process.

        Django may call ``ready()`` more than once (management commands with autoreload, test
        runners repopulating the registry); only the first successful call configures and patches.
        """
        global _ready_done
        from ...core import xray_recorder
        with _ready_lock:
            if _ready_done:
                return
            configure_recorder(xray_recorder)
            _ready_done = True
