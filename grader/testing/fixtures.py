"""Fixtures for hidden tests: student, reference, config, rng, credit, metrics, data_dir."""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np
import pytest

from grader.config import Assignment
from grader.testing.proxy import StudentProxy

if TYPE_CHECKING:  # plugin.py imports this module
    from grader.testing.plugin import GradingPlugin, Outcome

PLUGIN_KEY: pytest.StashKey[GradingPlugin] = pytest.StashKey()   # config.stash: the run's plugin
OUTCOME_KEY: pytest.StashKey[Outcome] = pytest.StashKey()         # item.stash: the test's outcome


class Credit:
    """Partial credit: a test that fails keeps the fraction awarded before it failed."""

    def __init__(self):
        self.fraction = 0.0

    def award(self, fraction: float) -> None:
        """Award this fraction (0..1) of the test's points even if it later fails."""
        self.fraction = min(max(float(fraction), 0.0), 1.0)


def _plugin(request):
    return request.config.stash[PLUGIN_KEY]


@pytest.fixture
def student(request) -> StudentProxy:
    """Proxy to the student's functions, limited to the test's calls marker."""
    plugin = _plugin(request)
    markers = request.node.stash[OUTCOME_KEY].markers
    return StudentProxy(plugin.session, markers.calls, markers.call_timeout or plugin.assignment.limits.call_timeout,
                        plugin.static_forbidden, plugin.files, plugin.workdir)


@pytest.fixture(scope="session")
def reference(request):
    """The master notebook's definitions, loaded in the grader's process."""
    from grader.testing.reference import load_reference
    return load_reference(_plugin(request).assignment.master)


@pytest.fixture(scope="session")
def config(request) -> Assignment:
    """The assignment's validated config (assignment.toml): thresholds, limits, functions..."""
    return _plugin(request).assignment


@pytest.fixture(scope="session")
def data_dir(request) -> str | None:
    """The explicit --data-dir given to the grader, or None."""
    return _plugin(request).data_dir


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the run's seed and this test's id."""
    return np.random.default_rng([_plugin(request).seed, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture
def credit(request):
    """Partial credit kept if the test fails after credit.award(fraction)."""
    credit = Credit()
    yield credit
    outcome = request.node.stash.get(OUTCOME_KEY, None)
    if outcome is not None:
        outcome.credit = credit.fraction


@pytest.fixture
def metrics(request):
    """A dict of measured values (e.g. accuracies) stored with the test's result; used by calibrate."""
    values: dict = {}
    yield values
    outcome = request.node.stash.get(OUTCOME_KEY, None)
    if outcome is not None:
        outcome.metrics.update(values)
