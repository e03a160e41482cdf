"""Is an object still running its class's own methods, and may its attributes be cached?

The recorder, the context and the UDP emitter take shortcuts past some of their methods while those
are their own, and notice overrides (a subclass, a mixin, a patch on the instance or on the class, a
wrapt wrapper) so that customised code is always called.

Why not look in ``obj.__dict__``: on CPython 3.11 and later, reading an instance's ``__dict__`` turns
its attribute storage into a real dict for good, and from then on every attribute read on that object
misses the interpreter's specialised fast path (about 300 instructions instead of about 30, measured on
3.11). These objects are read a dozen times per traced request, so the checks read bound methods and
class attributes instead. (An object with 30 or more instance attributes never gets inline storage on
3.11: UDPEmitter has 29, and 30 once ``accepts_documents`` is assigned on it.)
"""
from types import MethodType
from typing import Any, Dict, Iterable


def own_methods(cls: type, names: Iterable[str]) -> Dict[str, Any]:
    """``cls``'s functions for ``names``, taken when called: before anyone can patch them."""
    return {name: getattr(cls, name) for name in names}


def uses_own_methods(obj: Any, originals: Dict[str, Any]) -> bool:
    """True while each method ``obj`` would call for a name in ``originals`` is that function bound to ``obj``.

    False as soon as one is overridden by a subclass or mixin, or replaced on the instance or on the
    class (a mock, a plain function, a ``functools.partial``, a wrapt wrapper: it passes ``__func__``
    through, but is not a bound method itself). The original bound method assigned back (what
    ``monkeypatch.undo`` does) counts as the method itself.
    """
    for name, function in originals.items():
        if not is_bound_original(getattr(obj, name, None), function, obj):
            return False
    return True


def is_bound_original(bound: Any, function: Any, obj: Any) -> bool:
    """True when ``bound`` (what ``obj.<name>`` gave) is ``function`` bound to ``obj`` and nothing else."""
    # type(), not isinstance: a wrapt proxy claims to be a MethodType through __class__.
    return type(bound) is MethodType and bound.__func__ is function and bound.__self__ is obj


def stored_value(obj: Any, name: str) -> Any:
    """``obj``'s attribute ``name`` if it is a stored value; None if its class computes it (a property
    or another descriptor), since such a value may change without an assignment and must not be kept."""
    if hasattr(type(getattr(type(obj), name, None)), '__get__'):
        return None
    return getattr(obj, name, None)
