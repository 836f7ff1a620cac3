"""Outbox ring: order, overflow drops the oldest (unprotected) item and counts it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.outbox import Outbox


def contents(ob):
    return [ob.peek(i) for i in range(len(ob))]


# (capacity, pushes, protect, expected contents, expected dropped)
OVERFLOW = [
    (3, [1, 2, 3], 0, [1, 2, 3], 0),
    (3, [1, 2, 3, 4], 0, [2, 3, 4], 1),
    (3, [1, 2, 3, 4, 5, 6, 7], 0, [5, 6, 7], 4),
    (1, [1, 2, 3], 0, [3], 2),
    # the first `protect` items are in flight in the MQTT session: keep them, drop the next
    (4, [1, 2, 3, 4, 5], 2, [1, 2, 4, 5], 1),
    (4, [1, 2, 3, 4, 5, 6], 2, [1, 2, 5, 6], 2),
    (4, [1, 2, 3, 4, 5], 3, [1, 2, 3, 5], 1),
    # all protected: the new item is the one dropped
    (3, [1, 2, 3, 4], 3, [1, 2, 3], 1),
]


@pytest.mark.parametrize("cap,pushes,protect,expected,dropped", OVERFLOW)
def test_overflow_table(cap, pushes, protect, expected, dropped):
    ob = Outbox(cap)
    for p in pushes:
        ob.push(p, protect)
    assert contents(ob) == expected
    assert ob.dropped == dropped
    assert len(ob) == len(expected)


def test_pop_in_order_and_wraparound():
    ob = Outbox(3)
    out = []
    for i in range(10):
        ob.push(i)
        if i % 2:
            out.append(ob.pop())
    while len(ob):
        out.append(ob.pop())
    assert out == sorted(out)
    assert ob.dropped == 10 - len(out)
    with pytest.raises(IndexError):
        ob.pop()
    with pytest.raises(IndexError):
        ob.peek(0)


def test_clear_keeps_dropped_and_capacity_validated():
    ob = Outbox(2)
    for i in range(5):
        ob.push(i)
    ob.clear()
    assert len(ob) == 0 and ob.dropped == 3
    with pytest.raises(ValueError):
        Outbox(0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.lists(st.one_of(st.just("pop"), st.integers(0, 3)), max_size=120))
def test_against_a_model(cap, ops):
    """Pushes (with a protect count) and pops behave like a plain list model."""
    ob, model, n, dropped = Outbox(cap), [], 0, 0
    for op in ops:
        if op == "pop":
            if model:
                assert ob.pop() == model.pop(0)
            continue
        protect = min(op, len(model))
        if len(model) == cap:
            dropped += 1
            if protect < cap:
                del model[protect]
                model.append(n)
        else:
            model.append(n)
        ob.push(n, protect)
        n += 1
        assert contents(ob) == model
    assert ob.dropped == dropped


def test_each_item_keeps_its_seq_through_drops_and_removals():
    ob = Outbox(4)
    for seq in range(4):
        ob.push(f"r{seq}", 0, seq)
    assert ob.push("r4", 2, 4) is True  # full: the oldest unprotected (index 2, "r2") goes
    assert [ob.peek(i) for i in range(4)] == ["r0", "r1", "r3", "r4"]
    assert [ob.seq(i) for i in range(4)] == [0, 1, 3, 4] and ob.dropped == 1
    ob.remove(1)  # not counted as dropped: the caller knows why (the broker refused it)
    assert [(ob.peek(i), ob.seq(i)) for i in range(3)] == [("r0", 0), ("r3", 3), ("r4", 4)]
    assert ob.dropped == 1 and len(ob) == 3
    assert ob.pop() == "r0" and ob.seq(0) == 3
    with pytest.raises(IndexError):
        ob.seq(2)
    with pytest.raises(IndexError):
        ob.remove(2)
