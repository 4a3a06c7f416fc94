"""Test PKI made at test time with the ``openssl`` command-line tool.

``make_certs(dir)`` writes, with ECDSA P-256 keys (fast handshakes):

- ``ca``: a root CA; ``server_cert``/``server_key`` signed by it for
  ``localhost``, ``127.0.0.1`` and ``::1``; ``client_cert``/``client_key``
  (CN ``mgpy-test-client``, clientAuth) signed by it;
- ``other_ca`` and ``other_cert``/``other_key``: a second CA nobody trusts,
  and a ``localhost`` certificate it signed (the "unknown CA" case).

Test modules wrap ``make_certs`` in a module-scoped ``certs`` fixture.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

__all__ = ["Certs", "make_certs"]

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclasses.dataclass(frozen=True)
class Certs:
    """Paths of the generated PEM files."""

    dir: Path
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str
    other_cert: str
    other_key: str


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _make_ca(d: Path, name: str) -> tuple[str, str]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    _run(
        "req",
        "-x509",
        *_EC,
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "3",
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    return str(cert), str(key)


def _make_leaf(d: Path, name: str, ca: tuple[str, str], ext: str) -> tuple[str, str]:
    cert, key, csr, extf = (
        d / f"{name}.pem",
        d / f"{name}.key",
        d / f"{name}.csr",
        d / f"{name}.ext",
    )
    _run("req", "-new", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    extf.write_text(ext)
    _run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        ca[0],
        "-CAkey",
        ca[1],
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "3",
        "-extfile",
        str(extf),
    )
    return str(cert), str(key)


def make_certs(d: Path) -> Certs:
    """Write a CA, server and client certificates and an unrelated CA into ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(d, "mgpy-test-ca")
    server_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
    )
    srv = _make_leaf(d, "localhost", ca, server_ext)
    cli = _make_leaf(
        d,
        "mgpy-test-client",
        ca,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    other_ca = _make_ca(d, "untrusted-ca")
    other = _make_leaf(d, "other-localhost", other_ca, server_ext)
    return Certs(d, ca[0], srv[0], srv[1], cli[0], cli[1], other_ca[0], other[0], other[1])
