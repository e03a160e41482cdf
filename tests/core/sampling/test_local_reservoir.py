import threading

from aws_like_sdk.core.sampling.local.reservoir import Reservoir


def test_admits_traces_per_sec_then_refuses(clock):
    reservoir = Reservoir(3, clock=clock)
    assert [reservoir.take() for _ in range(5)] == [True, True, True, False, False]


def test_next_second_refills(clock):
    reservoir = Reservoir(1, clock=clock)
    assert reservoir.take() and not reservoir.take()
    clock.advance(0.5)  # same wall-clock second boundary? start is a whole second, so still the same
    assert not reservoir.take()
    clock.advance(0.5)
    assert reservoir.take()


def test_zero_admits_nothing(clock):
    assert not Reservoir(0, clock=clock).take()


def test_thread_safe_under_contention(clock):
    reservoir = Reservoir(100, clock=clock)
    results = []
    lock = threading.Lock()

    def worker():
        taken = sum(reservoir.take() for _ in range(50))
        with lock:
            results.append(taken)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sum(results) == 100
