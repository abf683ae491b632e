"""The tutorial's producer/consumer with an Enum, corrected, then the same with corelane.Pipeline.

By hand, every consumer needs its own DONE: the tutorial's single DONE stops one consumer and
leaves the others blocked forever on ``q.get()``. Here the producer sends one per consumer, the
queue is bounded (a fast producer cannot fill memory), results come back on a second queue, and
every wait has a timeout. Pipeline does all of that for you, with several consumers per stage.

    python examples/producer_consumer.py
"""

from __future__ import annotations

import queue
import random
import time
from enum import StrEnum
from multiprocessing import Process, Queue

from corelane import MessageType, Pipeline


class Message(StrEnum):  # str-valued: prints and compares as plain text, typos fail loudly
    DATA = "data"
    DONE = "done"


N_ITEMS = 20
N_CONSUMERS = 3


def process(item: int) -> int:
    time.sleep(random.uniform(0.01, 0.05))  # simulated work
    return item * item


def producer(q: Queue, items: list[int], n_consumers: int) -> None:  # type: ignore[type-arg]
    for item in items:
        q.put((Message.DATA, item))
    for _ in range(n_consumers):  # one DONE per consumer, or the others wait forever
        q.put((Message.DONE, None))


def consumer(q: Queue, results: Queue) -> None:  # type: ignore[type-arg]
    handled = 0
    while True:
        kind, payload = q.get(timeout=30)
        if kind is Message.DONE:
            break
        results.put(process(payload))
        handled += 1
    results.put((Message.DONE, handled))


def by_hand(items: list[int]) -> list[int]:
    q: Queue = Queue(maxsize=8)  # type: ignore[type-arg]
    results: Queue = Queue()  # type: ignore[type-arg]
    workers = [Process(target=producer, args=(q, items, N_CONSUMERS))]
    workers += [Process(target=consumer, args=(q, results)) for _ in range(N_CONSUMERS)]
    for p in workers:
        p.start()
    out: list[int] = []
    done = 0
    while done < N_CONSUMERS:  # count the consumers' DONEs by hand, too
        try:
            message = results.get(timeout=30)
        except queue.Empty:
            raise RuntimeError("a consumer stopped answering") from None
        if isinstance(message, tuple) and message[0] is Message.DONE:
            print(f"  consumer received DONE after {message[1]} items")
            done += 1
        else:
            out.append(message)
    for p in workers:
        p.join(10)
    return out


if __name__ == "__main__":
    items = list(range(N_ITEMS))
    expected = [x * x for x in items]

    t0 = time.perf_counter()
    print(f"-- by hand: 1 producer, {N_CONSUMERS} consumers, Queue + Enum, one DONE each")
    got = by_hand(items)
    print(f"by hand: {len(got)} results, correct={sorted(got) == expected}, "
          f"{time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    print(f"-- corelane.Pipeline: the same work, {N_CONSUMERS} consumers, no sentinels to count")
    got = Pipeline(items).stage(process, workers=N_CONSUMERS).run()
    print(f"pipeline: {len(got)} results, in order={got == expected}, "
          f"{time.perf_counter() - t0:.2f} s")

    print("-- and two stages, unordered (as finished)")
    got = Pipeline(items, ordered=False).stage(process, workers=N_CONSUMERS).stage(abs, workers=2).run()
    print(f"two stages: {len(got)} results, correct={sorted(got) == expected}")
    print(f"(the messages inside are corelane.MessageType: {', '.join(m.name for m in MessageType)})")
