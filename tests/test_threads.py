"""MLX work streamed to a consumer that hops threads (as web servers do) still runs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import mlx.core as mx

from localsft.platform.threads import iterate_in_thread


def _running_sums(n: int):
    total = mx.array(0.0)
    for i in range(n):
        total = total + mx.array(float(i))  # a lazy graph that grows across yields
        yield total.item()


def _pull_each_from_a_new_thread(iterator) -> list:
    out = []
    while True:
        with ThreadPoolExecutor(max_workers=1) as pool:
            item = pool.submit(next, iterator, None).result()
        if item is None:
            return out
        out.append(item)


def test_items_arrive_in_order_from_one_worker_thread():
    assert _pull_each_from_a_new_thread(iterate_in_thread(lambda: _running_sums(5))) == [0, 1, 3, 6, 10]


def test_errors_reach_the_consumer():
    def broken():
        yield 1
        raise ValueError("bad row 3")

    with pytest.raises(ValueError, match="bad row 3"):
        list(iterate_in_thread(broken))


def test_a_consumer_that_stops_early_stops_the_worker():
    produced, finished = [], threading.Event()

    def endless():
        try:
            for i in range(10**9):
                produced.append(i)
                yield i
        finally:
            finished.set()  # runs when the worker drops the iterator

    stream = iterate_in_thread(endless)
    assert next(stream) == 0
    stream.close()  # no hang, no error
    assert finished.wait(10), "the worker thread kept iterating after the consumer stopped"
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count < 10, "items were still produced after the stop"
