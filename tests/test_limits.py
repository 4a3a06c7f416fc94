"""Limits refuses values that would break the server silently, at construction time."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

import mgpy

INT_FIELDS = [f.name for f in dataclasses.fields(mgpy.Limits) if f.type in ("int", int)]
FLOAT_FIELDS = [f.name for f in dataclasses.fields(mgpy.Limits) if f.type in ("float", float)]


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_timeouts_must_be_finite_and_not_negative(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=name):
        mgpy.Limits(**{name: bad})


@pytest.mark.parametrize("name", FLOAT_FIELDS + INT_FIELDS)
@pytest.mark.parametrize("bad", ["10", True, None, b"1"])
def test_wrong_types_are_refused(name: str, bad: Any) -> None:
    with pytest.raises(TypeError, match=name):
        mgpy.Limits(**{name: bad})


@pytest.mark.parametrize(
    "name", ["recv_size", "max_recv_buffer", "max_send_buffer", "ws_max_message", "max_parts"]
)
def test_sizes_where_zero_means_nothing_works_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        mgpy.Limits(**{name: 0})


def test_zero_still_disables_a_timeout_and_ints_are_fine_for_seconds() -> None:
    lim = mgpy.Limits(header_timeout=0, keepalive_timeout=5, max_body=0)
    assert lim.header_timeout == 0 and lim.keepalive_timeout == 5 and lim.max_body == 0


def test_bind_and_poll_refuse_bad_arguments_clearly(mgr: mgpy.Manager) -> None:
    with pytest.raises(TypeError, match="bind"):
        mgr.bind(None, lambda *a: None)  # type: ignore[arg-type]
    lc = mgr.bind(0, lambda *a: None)  # an int port (0: any free one) works
    assert lc.local[1] > 0
    with pytest.raises(ValueError):
        mgr.poll(math.nan)
    mgr.call_later(0.01, lambda: None)
    assert mgr.poll(math.inf) == 0  # waits for the timer, no OverflowError


@pytest.mark.parametrize("addr", ["127.0.0.1:\u00b2", "127.0.0.1:\u0663", "127.0.0.1:x"])
def test_ports_are_ascii_digits_only(mgr: mgpy.Manager, addr: str) -> None:
    with pytest.raises(mgpy.Error, match="bad port"):
        mgr.bind(addr, lambda *a: None)
