import threading

from aws_like_sdk.core.sampling.reservoir import Reservoir, ReservoirDecision

NOW = 1_700_000_000


def test_decision_values():
    assert [d.value for d in ReservoirDecision] == ['take', 'borrow', 'no']


def test_borrows_one_per_second_without_quota():
    reservoir = Reservoir()
    assert reservoir.borrow_or_take(NOW, True) is ReservoirDecision.BORROW
    assert reservoir.borrow_or_take(NOW, True) is ReservoirDecision.NO
    assert reservoir.borrow_or_take(NOW + 1, True) is ReservoirDecision.BORROW


def test_no_borrow_when_rule_cannot():
    assert Reservoir().borrow_or_take(NOW, False) is ReservoirDecision.NO


def test_takes_quota_per_second_while_fresh():
    reservoir = Reservoir()
    reservoir.load_quota(3, NOW + 10, 20)
    assert (reservoir.quota, reservoir.TTL) == (3, NOW + 10)
    decisions = [reservoir.borrow_or_take(NOW, True) for _ in range(4)]
    assert decisions == [ReservoirDecision.TAKE] * 3 + [ReservoirDecision.NO]
    assert reservoir.borrow_or_take(NOW + 1, True) is ReservoirDecision.TAKE


def test_expired_quota_falls_back_to_borrowing():
    reservoir = Reservoir()
    reservoir.load_quota(5, NOW, None)
    assert reservoir.borrow_or_take(NOW, True) is ReservoirDecision.TAKE  # TTL >= now is still fresh
    assert reservoir.borrow_or_take(NOW + 1, True) is ReservoirDecision.BORROW
    assert reservoir.borrow_or_take(NOW + 1, True) is ReservoirDecision.NO


def test_zero_quota_means_no_reservoir():
    reservoir = Reservoir()
    reservoir.load_quota(0, NOW + 10, None)
    assert reservoir.borrow_or_take(NOW, True) is ReservoirDecision.NO


def test_none_values_leave_state():
    reservoir = Reservoir()
    reservoir.load_quota(2, NOW + 5, 10)
    reservoir.load_quota(None, None, None)
    assert (reservoir.quota, reservoir.TTL) == (2, NOW + 5)
    reservoir.clear_quota()
    assert reservoir.quota is None and reservoir.TTL is None


def test_report_interval_in_ten_second_ticks():
    reservoir = Reservoir()
    assert reservoir.time_to_report()  # default: every tick
    reservoir.load_quota(None, None, 30)  # every 3 ticks
    assert [reservoir.time_to_report() for _ in range(6)] == [False, False, True, False, False, True]


def test_quota_is_exact_under_contention():
    reservoir = Reservoir()
    reservoir.load_quota(50, NOW + 5, None)
    taken = []

    def worker():
        mine = sum(reservoir.borrow_or_take(NOW, True) is ReservoirDecision.TAKE for _ in range(40))
        taken.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sum(taken) == 50


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=100, deadline=None)
@given(quota=st.one_of(st.none(), st.integers(0, 5)), ttl_offset=st.integers(-3, 10),
       steps=st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=60))
def test_per_second_limits_hold(quota, ttl_offset, steps):
    reservoir = Reservoir()
    if quota is not None:
        reservoir.load_quota(quota, NOW + ttl_offset, None)
    now = NOW
    per_second = {}
    for advance, can_borrow in steps:
        now += advance
        decision = reservoir.borrow_or_take(now, can_borrow)
        taken, borrowed = per_second.get(now, (0, 0))
        per_second[now] = (taken + (decision is ReservoirDecision.TAKE),
                           borrowed + (decision is ReservoirDecision.BORROW))
    for second, (taken, borrowed) in per_second.items():
        fresh = quota is not None and NOW + ttl_offset >= second
        assert taken <= (quota if fresh else 0)
        assert borrowed <= (0 if fresh else 1)
