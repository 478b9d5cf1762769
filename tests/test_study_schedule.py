"""The schedule: which models, in which jobs, on which host, how many at once."""
from __future__ import annotations

import pytest

from jaxser.study.schedule import (SHARED_ROWS_BYTES, host_share, largest_first, rows_for, run_jobs, still_missing,
                                   training_jobs)


def test_jobs_round_robin_over_recipes_and_split_between_hosts():
    jobs = training_jobs(["e1", "e2"], ["fcn"], ["last"], ["k1", "k2", "k3"], keys_per_job=2)
    assert jobs == [(("e1", "fcn", "last"), ["k1", "k2"]), (("e2", "fcn", "last"), ["k1", "k2"]),
                     (("e1", "fcn", "last"), ["k3"]), (("e2", "fcn", "last"), ["k3"])]
    shares = [host_share(jobs, p, 3) for p in range(3)]
    assert sorted(map(repr, sum(shares, []))) == sorted(map(repr, jobs))  # split, not duplicated
    left = still_missing(jobs, lambda r, k: not (r[0] == "e1" and k in ("k1", "k2", "k3")) and k != "k2")
    assert left == [(("e2", "fcn", "last"), ["k1"]), (("e2", "fcn", "last"), ["k3"])]


def test_rows_are_shared_unless_padding_costs_too_much_memory():
    assert rows_for((13, 768), "last", 1000) == 1000
    big = SHARED_ROWS_BYTES // (2 * 4 * 768) + 1
    assert rows_for((13, 768), "last", big) is None
    small = SHARED_ROWS_BYTES // (2 * 4 * 768)
    assert rows_for((13, 768), "last", small) == small and rows_for((13, 768), "weighted", small) is None


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_run_jobs_writes_every_finished_model_before_the_error(exc):
    """A job that fails while another runs: the running one finishes and is written, nothing is
    written twice, no more than `workers` run at once, and the error then propagates."""
    import threading

    failing_started = threading.Event()
    lock = threading.Lock()
    started, written, in_flight, peak = [], [], [0], [0]

    def train(u):
        with lock:
            started.append(u)
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            if u == 1:
                failing_started.set()
                raise exc("planted")
            if u == 0:
                failing_started.wait()  # still running when job 1 fails
            return u * 10
        finally:
            with lock:
                in_flight[0] -= 1

    with pytest.raises(exc, match="planted"):
        run_jobs(list(range(8)), train, lambda u, r: written.append((u, r)), workers=2)
    assert (0, 0) in written and peak[0] <= 2
    assert sorted(u for u, _ in written) == sorted(u for u in started if u != 1)
    assert all(r == u * 10 for u, r in written)


def test_largest_training_sets_first():
    """Keys are trained largest first (a long model started last would run alone), ties in
    the given order, so every host builds the same list."""
    assert largest_first({"same:a/0": 96, "loco:a": 392, "same:a/1": 96, "cross:a": 144}) == [
        "loco:a", "cross:a", "same:a/0", "same:a/1"]
