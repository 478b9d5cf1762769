"""Check finished run directories: `tox -e spec -- --run-dir DIR` (or pytest spec --run-dir DIR)."""
import pytest

from spec.checks import check_run


def test_run_directories_conform(run_dirs):
    if not run_dirs:
        pytest.skip("no --run-dir given: nothing to check (see README: checking a run)")
    for d in run_dirs:
        problems = check_run(d)
        assert problems == [], f"{d} violates the protocol:\n" + "\n".join(problems)
