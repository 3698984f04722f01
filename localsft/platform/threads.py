"""Run an iterator of MLX work on one thread of its own, consumed from any thread.

MLX keeps its streams per thread: a lazy graph built in one thread cannot be
evaluated in another ("There is no Stream(cpu, N) in current thread"). Servers
such as Gradio advance a streaming handler from whichever pool thread is free, so
a generation that yields would hop threads between tokens. `iterate_in_thread`
keeps the whole iteration on one dedicated thread and hands the items over a queue.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator

import mlx.core as mx

_DONE = object()


def iterate_in_thread(make_iterator: Callable[[], Iterator]) -> Iterator:
    """Yield what `make_iterator()` yields, running it entirely on one worker thread.

    Exceptions raised by the iterator are re-raised in the consumer. If the consumer
    stops early, the worker stops at its next item.
    """
    items: queue.Queue = queue.Queue(maxsize=1)
    cancelled = threading.Event()
    context = contextvars.copy_context()  # keep request-scoped context (e.g. progress bars)

    def work() -> None:
        try:
            for item in make_iterator():
                while not cancelled.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if cancelled.is_set():
                    return
            items.put((_DONE, None))
        except BaseException as err:  # handed to the consumer, raised there
            items.put((_DONE, err))
        finally:
            mx.clear_streams()  # without it the interpreter aborted at exit in about 7 runs of 10

    worker = threading.Thread(target=context.run, args=(work,), daemon=True, name="localsft-mlx")
    worker.start()
    try:
        while True:
            item, err = items.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        cancelled.set()
        try:  # unblock a worker waiting to hand over an item
            items.get_nowait()
        except queue.Empty:
            pass
