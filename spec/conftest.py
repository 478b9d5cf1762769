import pytest


def pytest_addoption(parser):
    parser.addoption("--run-dir", action="append", default=[],
                     help="a finished jaxser run directory to check against the protocol (repeatable)")


@pytest.fixture
def run_dirs(request):
    return request.config.getoption("--run-dir")
