"""Shared fixtures: a Manager that is always closed, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

import mgpy


@pytest.fixture
def mgr() -> Iterator[mgpy.Manager]:
    m = mgpy.Manager()
    try:
        yield m
    finally:
        m.close()


def run_until(mgr: mgpy.Manager, cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``mgr`` until ``cond()`` is true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        mgr.poll(10)


@pytest.fixture
def poll_until(mgr: mgpy.Manager) -> Callable[..., None]:
    def _poll(cond: Callable[[], object], timeout: float = 5.0) -> None:
        run_until(mgr, cond, timeout)

    return _poll
