"""Mbuf: mongoose mbuf semantics, limits and zero-copy views."""

from __future__ import annotations

import pytest

from mgpy import Mbuf


class TestAppendInsert:
    def test_append_grows_by_one_and_a_half(self) -> None:
        mb = Mbuf()
        assert mb.append(b"abcd") == 4
        assert mb.len == 4
        assert mb.size == 6  # (0 + 4) * 1.5
        mb.append(b"ef")
        assert mb.size == 6  # fits, no growth
        mb.append(b"g")
        assert mb.size == int(7 * 1.5)
        assert bytes(mb) == b"abcdefg"

    def test_initial_capacity_is_kept_until_exceeded(self) -> None:
        mb = Mbuf(100)
        mb.append(b"x" * 100)
        assert mb.size == 100

    def test_insert_at_offset_and_clamped(self) -> None:
        mb = Mbuf()
        mb.append(b"ad")
        assert mb.insert(1, b"bc") == 2
        assert mb.insert(99, b"!") == 1
        assert mb.insert(-5, b">") == 1
        assert bytes(mb) == b">abcd!"

    def test_str_is_not_accepted(self) -> None:
        with pytest.raises(TypeError):
            Mbuf().append("text")  # type: ignore[arg-type]


class TestMaxSize:
    def test_append_over_max_returns_zero_and_leaves_buffer(self) -> None:
        mb = Mbuf(max_size=5)
        assert mb.append(b"abc") == 3
        assert mb.append(b"def") == 0
        assert bytes(mb) == b"abc"
        assert mb.size <= 5
        assert mb.append(b"de") == 2
        assert bytes(mb) == b"abcde"

    def test_insert_over_max_returns_zero(self) -> None:
        mb = Mbuf(max_size=4)
        mb.append(b"abc")
        assert mb.insert(0, b"xy") == 0
        assert bytes(mb) == b"abc"

    def test_growth_is_capped_at_max(self) -> None:
        mb = Mbuf(max_size=10)
        mb.append(b"x" * 8)
        assert mb.size == 10

    def test_resize_respects_len_and_max(self) -> None:
        mb = Mbuf(max_size=50)
        mb.append(b"x" * 10)
        mb.resize(5)
        assert mb.size >= 10
        mb.resize(60)
        assert mb.size <= 50
        mb.resize(40)
        assert mb.size == 40


class TestRemove:
    def test_remove_from_front(self) -> None:
        mb = Mbuf()
        mb.append(b"hello world")
        mb.remove(6)
        assert bytes(mb) == b"world"
        mb.remove(100)
        assert mb.len == 0

    def test_remove_many_small_pieces_keeps_order(self) -> None:
        mb = Mbuf()
        data = bytes(range(256)) * 1024
        mb.append(data)
        out = bytearray()
        while mb.len:
            out += mb.view()[:7]
            mb.remove(7)
        assert bytes(out) == data

    def test_clear_keeps_size_free_drops_it(self) -> None:
        mb = Mbuf()
        mb.append(b"x" * 100)
        size = mb.size
        mb.clear()
        assert (mb.len, mb.size) == (0, size)
        mb.free()
        assert (mb.len, mb.size) == (0, 0)

    def test_trim_shrinks_size_to_len(self) -> None:
        mb = Mbuf()
        mb.append(b"x" * 100)
        mb.remove(90)
        mb.trim()
        assert mb.size == 10 == mb.len

    def test_append_and_free_moves_data(self) -> None:
        a, b = Mbuf(), Mbuf()
        a.append(b"ab")
        b.append(b"cd")
        assert a.append_and_free(b) == 2
        assert bytes(a) == b"abcd"
        assert (b.len, b.size) == (0, 0)

    def test_append_and_free_refused_loses_nothing(self) -> None:
        a, b = Mbuf(max_size=3), Mbuf()
        a.append(b"ab")
        b.append(b"cd")
        assert a.append_and_free(b) == 0
        assert bytes(a) == b"ab" and bytes(b) == b"cd"


class TestViews:
    def test_view_is_zero_copy(self) -> None:
        mb = Mbuf()
        mb.append(b"abc")
        v = mb.view()
        assert v.obj is mb.buf  # the same memory, not a copy
        assert v.tobytes() == b"abc"

    def test_mutating_while_a_view_is_alive_keeps_the_old_view_valid(self) -> None:
        mb = Mbuf()
        mb.append(b"abc")
        v = mb.view()
        mb.append(b"def")
        mb.remove(2)
        mb.insert(0, b">")
        assert v.tobytes() == b"abc"
        assert bytes(mb) == b">cdef"
        mb.clear()
        assert v.tobytes() == b"abc"
        assert mb.len == 0

    def test_find(self) -> None:
        mb = Mbuf()
        mb.append(b"GET / HTTP/1.1\r\n\r\n")
        assert mb.find(b"\r\n\r\n") == 14
