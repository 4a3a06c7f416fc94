"""RFC 6455 5.3 masking: the C speedup and the pure-Python fallback against a reference."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

import mgpy.proto.ws as ws
from mgpy._accel import NO_EXTENSIONS_ENV, extensions_disabled, load_speedups
from tests.proto.ws_helpers import cframe, drive, ref_mask

c_apply_mask: Callable[[ws.Buffer, ws.Buffer], bytes] | None
try:
    from mgpy._speedups import apply_mask as c_apply_mask
except ImportError:  # pragma: no cover - the extension is built by `pip install -e .`
    c_apply_mask = None

IMPLS: list[tuple[str, Callable[[ws.Buffer, ws.Buffer], bytes]]] = [("py", ws.apply_mask_py)]
if c_apply_mask is not None:
    IMPLS.append(("c", c_apply_mask))

LENGTHS = sorted(
    {*range(0, 70), 125, 126, 127, 511, 512, 513, 1023, 1024, 1025, 4095, 4097}
    | {random.Random(n).randrange(70, 70000) for n in range(40)}
    | {65535, 65536, 65537, 69999, 70000}
)


def test_c_speedup_is_built_and_selected_unless_disabled() -> None:
    """`pip install -e .` builds mgpy._speedups wherever a C compiler is present, and the
    core picks it at import unless MGPY_NO_EXTENSIONS forces the pure-Python twin."""
    if c_apply_mask is None:  # only a compiler-less install may lack it (setup.py)
        compilers = [cc for cc in ("cc", "gcc", "clang") if shutil.which(cc)]
        assert not compilers, f"{compilers} present but mgpy._speedups was not built"
    if c_apply_mask is None or extensions_disabled():
        assert ws.apply_mask is ws.apply_mask_py
    else:
        assert ws.apply_mask is c_apply_mask


class TestMasking:
    @pytest.mark.parametrize("name,impl", IMPLS)
    def test_apply_mask_matches_reference_for_many_lengths(
        self, name: str, impl: Callable[[ws.Buffer, ws.Buffer], bytes]
    ) -> None:
        rnd = random.Random(6455)
        for n in LENGTHS:
            data = rnd.randbytes(n)
            mask = rnd.randbytes(4)
            out = impl(data, mask)
            assert type(out) is bytes
            assert out == ref_mask(data, mask), (name, n)
            assert impl(out, mask) == data  # masking twice is the identity

    @pytest.mark.parametrize("name,impl", IMPLS)
    def test_apply_mask_accepts_bytearray_and_memoryview_at_odd_offsets(
        self, name: str, impl: Callable[[ws.Buffer, ws.Buffer], bytes]
    ) -> None:
        rnd = random.Random(1)
        base = bytearray(rnd.randbytes(70010))
        mask = bytearray(rnd.randbytes(4))
        for start in (1, 3, 5, 7):
            for n in (0, 1, 7, 33, 4097, 70000):
                with memoryview(base) as mv, mv[start : start + n] as view:
                    assert impl(view, mask) == ref_mask(bytes(view), bytes(mask)), (start, n)
                assert impl(base[start : start + n], bytes(mask)) == ref_mask(
                    bytes(base[start : start + n]), bytes(mask)
                )

    def test_c_and_python_agree_on_random_data(self) -> None:
        assert c_apply_mask is not None
        rnd = random.Random(42)
        for _ in range(300):
            n = rnd.randrange(0, 70001) if rnd.random() < 0.3 else rnd.randrange(0, 300)
            data = rnd.randbytes(n)
            mask = rnd.randbytes(4)
            assert c_apply_mask(data, mask) == ws.apply_mask_py(data, mask)

    @pytest.mark.parametrize("name,impl", IMPLS)
    def test_apply_mask_rejects_a_mask_that_is_not_4_bytes(
        self, name: str, impl: Callable[[ws.Buffer, ws.Buffer], bytes]
    ) -> None:
        for bad in (b"", b"abc", b"abcde"):
            with pytest.raises(ValueError):
                impl(b"data", bad)

    def test_c_apply_mask_rejects_non_buffers(self) -> None:
        assert c_apply_mask is not None
        with pytest.raises(TypeError):
            c_apply_mask("text", b"abcd")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c_apply_mask(b"x")  # type: ignore[call-arg]


@pytest.fixture(params=[name for name, _ in IMPLS])
def mask_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a protocol test once per mask implementation."""
    impl = dict(IMPLS)[request.param]
    monkeypatch.setattr(ws, "apply_mask", impl)
    return str(request.param)


class TestMaskedFramesWithBothPaths:
    def test_server_receives_masked_frames_of_many_sizes_whole_and_in_pieces(
        self, mask_impl: str
    ) -> None:
        rnd = random.Random(7)
        for n in (0, 1, 5, 32, 125, 126, 4095, 4096, 65535, 65536, 70000):
            payload = rnd.randbytes(n)
            mask = rnd.randbytes(4)
            data = cframe(0x82, payload, mask=mask)
            for step in (len(data), 1 if n < 200 else 997, 4093):
                p = ws.WsProtocol("server")
                chunks = [data[i : i + step] for i in range(0, len(data), step)]
                events, exc = drive(p, chunks)
                assert exc is None
                assert events == [(0x82, payload)], (mask_impl, n, step)

    def test_client_sends_frames_the_server_unmasks(self, mask_impl: str) -> None:
        rnd = random.Random(8)
        client = ws.WsProtocol("client", rng=rnd.randbytes)
        server = ws.WsProtocol("server")
        for n in (0, 3, 32, 1000, 70000):
            payload = rnd.randbytes(n)
            events, exc = drive(server, [client.send(0x2, payload)])
            assert exc is None and events == [(0x82, payload)]


def test_pure_python_is_used_when_the_extension_is_missing() -> None:
    """Without mgpy._speedups the core imports and works on the pure-Python mask."""
    code = (
        "import sys; sys.modules['mgpy._speedups'] = None\n"
        "import mgpy.proto.ws as ws\n"
        "assert ws.apply_mask is ws.apply_mask_py\n"
        "p = ws.WsProtocol('server')\n"
        f"ev, n = p.next_event(bytes.fromhex({cframe(0x81, b'hello').hex()!r}))\n"
        "assert ev.data == b'hello' and n == 11\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


def _run_core_in_child(env_value: str | None) -> str:
    """Import the core in a fresh interpreter; return which mask it picked, after a frame."""
    env = {k: v for k, v in os.environ.items() if k != NO_EXTENSIONS_ENV}
    if env_value is not None:
        env[NO_EXTENSIONS_ENV] = env_value
    code = (
        "import mgpy.proto.ws as ws\n"
        "p = ws.WsProtocol('server')\n"
        f"ev, n = p.next_event(bytes.fromhex({cframe(0x81, b'hello').hex()!r}))\n"
        "assert ev.data == b'hello' and n == 11\n"
        "print('py' if ws.apply_mask is ws.apply_mask_py else 'c')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, env=env, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class TestNoExtensionsSwitch:
    """MGPY_NO_EXTENSIONS (issue 15): non-empty and not "0" forces the pure-Python paths."""

    @pytest.mark.parametrize("value", ["1", "yes", "true", "false", " "])
    def test_a_non_empty_value_other_than_0_disables_extensions(self, value: str) -> None:
        assert extensions_disabled({NO_EXTENSIONS_ENV: value})

    @pytest.mark.parametrize("env", [{}, {NO_EXTENSIONS_ENV: ""}, {NO_EXTENSIONS_ENV: "0"}])
    def test_unset_empty_or_0_keeps_extensions(self, env: dict[str, str]) -> None:
        assert not extensions_disabled(env)

    def test_load_speedups_returns_none_when_disabled(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NO_EXTENSIONS_ENV, "1")
        assert load_speedups() is None

    def test_core_uses_the_pure_python_mask_when_the_variable_is_set(self) -> None:
        assert _run_core_in_child("1") == "py"

    def test_core_uses_the_c_mask_if_built_when_the_variable_is_0_or_unset(self) -> None:
        want = "py" if c_apply_mask is None else "c"  # a compiler-less install is pure Python
        assert _run_core_in_child("0") == want
        assert _run_core_in_child(None) == want
