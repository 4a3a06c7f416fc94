"""Tests for sanitize_filename: upload names become safe base names or None."""

from __future__ import annotations

import unicodedata

import pytest

from mgpy.proto.multipart import sanitize_filename


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("a b.txt", "a b.txt"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/x.bin", "x.bin"),
        ("C:\\Users\\me\\My Doc.docx", "My Doc.docx"),
        ("\\\\server\\share\\f.txt", "f.txt"),
        ("dir/sub\\mixed/name.txt", "name.txt"),
        ("evil\x00.txt", "evil.txt"),
        ("tab\tnew\nline\r.txt", "tabnewline.txt"),
        ("del\x7fete.txt", "delete.txt"),
        ('a<b>c:d"e|f?g*h.txt', "abcdefgh.txt"),
        ("C:evil.txt", "Cevil.txt"),
        ("...hidden", "hidden"),
        (". . .x", "x"),
        ("  spaced  ", "spaced"),
        ("trailing.dots...", "trailing.dots"),
        ("name. . ", "name"),
        ("résumé.pdf", "résumé.pdf"),
        ("日本語.txt", "日本語.txt"),
        ("invoice\u202etxt.exe", "invoicetxt.exe"),  # right-to-left override removed
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("-dash.txt", "-dash.txt"),
    ],
)
def test_sanitized(name: str, safe: str) -> None:
    assert sanitize_filename(name) == safe


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        ".",
        "..",
        "...",
        "/",
        "\\",
        "../",
        "..\\..\\",
        "dir/",
        " . ",
        "\x00\x01",
        "???",
        "a/..",
    ],
)
def test_nothing_safe_left(name: str | None) -> None:
    assert sanitize_filename(name) is None


def test_nfc_normalised() -> None:
    decomposed = "e\u0301te\u0301.txt"  # "été" as macOS file systems store it
    assert sanitize_filename(decomposed) == "\u00e9t\u00e9.txt"
    assert sanitize_filename(decomposed) == unicodedata.normalize("NFC", decomposed)


def test_long_name_capped_at_255_bytes_keeping_extension() -> None:
    assert sanitize_filename("a" * 300 + ".tar.gz") == "a" * 252 + ".gz"
    assert sanitize_filename("b" * 300 + ".txt") == "b" * 251 + ".txt"


def test_long_multibyte_name_is_cut_on_a_character_boundary() -> None:
    out = sanitize_filename("é" * 200 + ".jpeg")
    assert out is not None
    raw = out.encode("utf-8")
    assert len(raw) <= 255 and out.endswith(".jpeg")
    assert out == "é" * 125 + ".jpeg"  # 250 bytes of "é" (2 bytes each) + 5


def test_long_name_without_extension() -> None:
    assert sanitize_filename("x" * 1000) == "x" * 255
    out = sanitize_filename("€" * 100)  # 3 bytes each: 85 fit
    assert out == "€" * 85


def test_short_names_are_unchanged() -> None:
    name = "b" * 251 + ".txt"
    assert sanitize_filename(name) == name
