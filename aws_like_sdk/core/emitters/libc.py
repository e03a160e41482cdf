"""One libc function through ctypes, for the batch senders (``sendmmsg``, ``lio_listio``)."""
import ctypes
import ctypes.util
import sys
from typing import Any, List, Optional


def libc_function(name: str, argtypes: List[Any], glibc_only: bool = False) -> Optional[Any]:
    """The Linux libc's ``name`` (int result, errno kept for ``ctypes.get_errno``), or None when this
    is not Linux, the libc lacks it, or ``glibc_only`` and the libc is not glibc."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        if glibc_only:
            libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError on other libcs
        function = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function
