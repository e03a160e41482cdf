"""Random ids from the OS CSPRNG, read in blocks.

One ``getrandom`` system call per id costs microseconds on some kernels and sandboxes; reading a
block and slicing it keeps ids cryptographically random at a fraction of the cost. The block is
discarded in a forked child so parent and child never hand out the same ids.
"""
import os
import threading

_BLOCK_BYTES = 4096
_lock = threading.Lock()
_block = b''
_offset = 0


def random_hex(nbytes: int) -> str:
    """Return ``2 * nbytes`` lowercase hex characters of CSPRNG output."""
    global _block, _offset
    with _lock:
        end = _offset + nbytes
        if end > len(_block):
            _block = os.urandom(_BLOCK_BYTES)
            _offset, end = 0, nbytes
        chunk = _block[_offset:end]
        _offset = end
    return chunk.hex()


def _discard_block() -> None:
    global _block, _offset, _lock
    _lock = threading.Lock()
    _block, _offset = b'', 0


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_discard_block)
