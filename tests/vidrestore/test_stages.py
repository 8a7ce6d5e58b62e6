"""vidrestore.stages: queue hand-offs stop on the first error, workers record what they raise."""
from __future__ import annotations

import queue
import threading
import time

import pytest

from vidrestore.stages import END, Cancelled, RunControl, StageClock, get, put, start_worker


def test_clock_adds_busy_time_per_stage_from_several_threads():
    clock = StageClock()

    def work() -> None:
        for _ in range(50):
            with clock.timed("detect"):
                time.sleep(0.001)
            clock.add("encode", 0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.seconds["encode"] == pytest.approx(4 * 50 * 0.5)
    assert 4 * 50 * 0.001 <= clock.seconds["detect"] < 5.0
    assert "restore" not in clock.seconds


def test_first_error_wins_and_cancelled_never_hides_it():
    ctl = RunControl()
    ctl.raise_if_failed()                                   # nothing yet: no exception
    ctl.fail(Cancelled())
    with pytest.raises(Cancelled):
        ctl.raise_if_failed()
    first, later = ValueError("decode failed"), RuntimeError("encode failed")
    ctl.fail(first)
    ctl.fail(later)
    ctl.fail(Cancelled())
    with pytest.raises(ValueError, match="decode failed"):
        ctl.raise_if_failed()
    assert ctl.error is first


def test_put_on_a_full_queue_gives_up_with_the_error_once_the_run_fails():
    ctl, q = RunControl(), queue.Queue(1)
    put(q, 1, ctl)
    threading.Timer(0.3, ctl.fail, args=(OSError("disk full"),)).start()
    t0 = time.perf_counter()
    with pytest.raises(OSError, match="disk full"):
        put(q, 2, ctl)                                      # would block forever without the flag
    assert 0.25 < time.perf_counter() - t0 < 3.0
    assert q.qsize() == 1


def test_get_hands_out_queued_items_before_raising_and_can_poll():
    ctl, q = RunControl(), queue.Queue(4)
    assert get(q, ctl, block=False) is None
    put(q, "a", ctl)
    put(q, END, ctl)
    ctl.fail(Cancelled())
    assert get(q, ctl) == "a" and get(q, ctl) is END       # what was queued still comes out
    with pytest.raises(Cancelled):
        get(q, ctl)
    with pytest.raises(Cancelled):
        get(q, ctl, block=False)


def test_worker_records_its_exception_and_a_consumer_sees_it():
    ctl, q = RunControl(), queue.Queue(2)

    def decode() -> None:
        put(q, "frame 0", ctl)
        raise KeyError("broken packet")

    thread = start_worker(decode, ctl)
    thread.join(5)
    assert thread.name == "decode" and thread.daemon and not thread.is_alive()
    assert get(q, ctl) == "frame 0"
    with pytest.raises(KeyError, match="broken packet"):
        get(q, ctl)


def test_a_worker_that_finishes_cleanly_records_nothing():
    ctl = RunControl()
    start_worker(lambda: None, ctl).join(5)
    assert ctl.error is None and not ctl.stop.is_set()
