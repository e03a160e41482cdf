"""Small helpers kept under their upstream names."""
import inspect

annotation_value_types = (int, float, bool, str)
string_types = str


def is_classmethod(func) -> bool:
    """Return True for a bound classmethod."""
    return getattr(func, '__self__', None) is not None and inspect.isclass(func.__self__)


def is_instance_method(parent_class, func_name, func) -> bool:
    """Return True when ``func_name`` on ``parent_class`` is a plain (instance) method."""
    try:
        attr = inspect.getattr_static(parent_class, func_name)
    except AttributeError:
        return False
    return not isinstance(attr, (staticmethod, classmethod)) and inspect.isfunction(func)
