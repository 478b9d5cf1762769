"""The CPU thread policy: one thread per core, at most the limit, never fewer than one."""
from __future__ import annotations

from hypothesis import given, strategies as st

from jaxser import threads


@given(cores=st.one_of(st.none(), st.integers(1, 512)), limit=st.integers(1, 64))
def test_one_thread_per_core_up_to_the_limit(cores, limit):
    real = threads.os.cpu_count
    threads.os.cpu_count = lambda: cores   # os.cpu_count() may say None: then one thread
    try:
        n = threads.cpu_threads(limit)
    finally:
        threads.os.cpu_count = real
    assert n == min(limit, cores or 1) and 1 <= n <= limit


def test_the_default_limit_is_four():
    assert 1 <= threads.cpu_threads() <= 4
