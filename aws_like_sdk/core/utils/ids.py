"""Random ids from the OS CSPRNG, read in blocks.

One ``getrandom`` system call per id costs microseconds on some kernels and sandboxes; reading a
block and slicing it keeps ids cryptographically random at a fraction of the cost. The pools are
emptied in a forked child so parent and child never hand out the same ids.
"""
import collections
import os
import threading

_BLOCK_BYTES = 4096
_lock = threading.Lock()
_block = b''
_offset = 0

# Ready-made ids for the hot path. deque.popleft() is atomic (documented thread-safe), so taking an
# id needs no lock; concurrent refills only add fresh random chunks, never a repeated one.
# The deques are only ever cleared, never replaced: take_entity_id is a bound popleft.
_entity_ids: 'collections.deque[str]' = collections.deque()
_trace_randoms: 'collections.deque[str]' = collections.deque()


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


def _refill(pool: 'collections.deque[str]', nbytes: int) -> None:
    # bytes.hex with a separator every ``nbytes`` bytes, then split: the block is cut into ids in C
    # (twice as fast as a regex pass over the hex string).
    pool.extend(os.urandom(_BLOCK_BYTES - _BLOCK_BYTES % nbytes).hex(' ', nbytes).split())


#: ``take_entity_id() -> str``: the hot-path form of :func:`entity_id`, the pool's own ``popleft``
#: (no Python-level call). It raises IndexError when the pool is empty; callers then call
#: :func:`entity_id`, which refills it.
take_entity_id = _entity_ids.popleft


def entity_id() -> str:
    """Return a new 16-hex-character (64-bit) segment or subsegment id."""
    try:
        return _entity_ids.popleft()
    except IndexError:
        _refill(_entity_ids, 8)
        return entity_id()


def trace_random() -> str:
    """Return the 24 random hex characters (96 bits) of a new trace id."""
    try:
        return _trace_randoms.popleft()
    except IndexError:
        _refill(_trace_randoms, 12)
        return trace_random()


# (start, end, '1-<epoch second as 8 hex digits>-') of the second trace ids are being begun in: ids
# begun within one second share the prefix. Floats, so "still this second?" is two comparisons and
# no int(); a tuple replaced in one assignment, so a racing thread sees the old or the new triple.
_current_second = (0.0, -1.0, '')


def trace_id_at(now: float) -> str:
    """Return a new trace id, ``1-<epoch seconds of now, 8 hex>-<24 random hex>``."""
    global _current_second
    second = _current_second
    if not second[0] <= now < second[1]:
        epoch = int(now)
        second = _current_second = (float(epoch), float(epoch + 1), '1-%08x-' % epoch)
    try:
        return second[2] + _trace_randoms.popleft()
    except IndexError:
        return second[2] + trace_random()


def _discard_block() -> None:
    global _block, _offset, _lock
    _lock = threading.Lock()
    _block, _offset = b'', 0
    _entity_ids.clear()
    _trace_randoms.clear()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_discard_block)
