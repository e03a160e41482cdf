"""A ``local`` subsegment per Django template render, named after the template.

``django.template.base.Template.render`` is wrapped with a reversible wrapt wrapper: every engine
entry point (``render()``, ``TemplateResponse``, ``{% include %}``, ``render_to_string``) ends up
there, so nested includes become nested subsegments. Renders outside a sampled segment call
straight through.
"""
import logging
from typing import Any

from ...core import _recording
from ...core.suppression import is_suppressed
from .._patching import guard, unwrap, wrap

log = logging.getLogger(__name__)

__all__ = ['patch_template', 'unpatch_template']

DEFAULT_NAME = 'template_render'

_patched = False


def _template_name(template: Any) -> str:
    name = getattr(template, 'name', None)
    if not name:
        name = getattr(getattr(template, 'origin', None), 'template_name', None)
    # str() also turns a SafeString into a plain str that serialises like any other.
    return str(name) if name else DEFAULT_NAME


@guard
def _traced_render(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not _patched or is_suppressed():
        return wrapped(*args, **kwargs)
    from ...core import xray_recorder as recorder
    entity = recorder.context.peek_trace_entity()
    if entity is None or not entity.sampled or not entity.in_progress:
        return wrapped(*args, **kwargs)
    return _recording.record_sync(recorder, wrapped, instance, args, kwargs, _template_name(instance), 'local',
                                  None)


def _is_ours(template_class: Any) -> bool:
    # Another tool may have wrapped render with wrapt too; only our own wrapper counts.
    return getattr(template_class.__dict__.get('render'), '_self_wrapper', None) is _traced_render


def patch_template() -> None:
    """Record a subsegment for each ``Template.render``. Idempotent; undone by :func:`unpatch_template`."""
    global _patched
    from django.template.base import Template
    if not _is_ours(Template):
        wrap(Template, 'render', _traced_render)
    _patched = True


def unpatch_template() -> None:
    """Restore the original ``Template.render`` (when the outermost wrapper is ours)."""
    global _patched
    from django.template.base import Template
    _patched = False
    if _is_ours(Template):
        unwrap(Template, 'render')
