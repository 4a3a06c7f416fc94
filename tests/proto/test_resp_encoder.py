"""The RESP command encoder: commands are arrays of blob strings, pipelines one bytes object."""

from __future__ import annotations

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.proto.resp import (
    pack_command,
    pack_pipeline,
)


class TestPackCommand:
    def test_client_sends_command_as_array_of_blob_strings(self) -> None:
        assert pack_command("SET", "key", "value") == (
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
        )

    @pytest.mark.parametrize(
        ("arg", "wire"),
        [
            (b"raw", b"$3\r\nraw\r\n"),
            (bytearray(b"ba"), b"$2\r\nba\r\n"),
            (memoryview(b"mv"), b"$2\r\nmv\r\n"),
            ("h\u00e9", b"$3\r\nh\xc3\xa9\r\n"),  # str is sent as UTF-8
            (42, b"$2\r\n42\r\n"),
            (-7, b"$2\r\n-7\r\n"),
            (2**70, b"$22\r\n1180591620717411303424\r\n"),
            (1.5, b"$3\r\n1.5\r\n"),
            (float("inf"), b"$3\r\ninf\r\n"),  # ZADD / ZRANGEBYSCORE accept "inf"
            (b"", b"$0\r\n\r\n"),
            (b"a\r\nb", b"$4\r\na\r\nb\r\n"),  # binary safe
        ],
    )
    def test_client_sends_each_argument_type(self, arg: object, wire: bytes) -> None:
        assert pack_command("X", arg) == b"*2\r\n$1\r\nX\r\n" + wire  # type: ignore[arg-type]

    def test_big_argument_is_sent_whole(self) -> None:
        value = bytes(range(256)) * 4096
        out = pack_command("SET", "k", value)
        assert out == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + value + b"\r\n"

    @pytest.mark.parametrize("arg", [True, None, [b"x"], {"a": 1}, object()])
    def test_client_refuses_argument_of_other_type(self, arg: object) -> None:
        with pytest.raises(TypeError):
            pack_command("SET", "k", arg)  # type: ignore[arg-type]

    def test_client_refuses_empty_command(self) -> None:
        with pytest.raises(LocalProtocolError):
            pack_command()
        with pytest.raises(LocalProtocolError):
            pack_pipeline([("PING",), ()])

    def test_int_subclass_is_sent_as_its_value(self) -> None:
        class Port(int):
            pass

        assert pack_command("X", Port(6379)) == b"*2\r\n$1\r\nX\r\n$4\r\n6379\r\n"


class TestPackPipeline:
    def test_pipeline_is_the_concatenation_of_its_commands(self) -> None:
        commands = [("SET", "k", 1), ("INCR", "k"), ("GET", b"k")]
        assert pack_pipeline(commands) == b"".join(pack_command(*c) for c in commands)

    def test_pipeline_accepts_any_iterable(self) -> None:
        out = pack_pipeline(("GET", f"k{i}") for i in range(3))
        assert out.count(b"*2\r\n$3\r\nGET\r\n") == 3

    def test_empty_pipeline_is_empty(self) -> None:
        assert pack_pipeline([]) == b""

    def test_pipeline_matches_hiredis(self) -> None:
        import hiredis  # type: ignore[import-not-found, unused-ignore]

        commands: list[tuple[str | bytes | int | float, ...]] = [
            ("SET", "k\u00e9", b"v" * 5000),
            ("INCRBY", "n", -3),
            ("ZADD", "z", 0.25, "m"),
        ]
        assert pack_pipeline(commands) == b"".join(hiredis.pack_command(c) for c in commands)
