"""A private CA and a server certificate it signed (localhost, 127.0.0.1), made with the
``openssl`` command-line tool at test time: what a device with its own CA looks like."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3"]


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate a client passes as --cacert
    cert: Path  # the server's certificate, signed by ca
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> Pki:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` into ``d``."""
    ca, ca_key = d / "ca.pem", d / "ca.key"
    cert, key, csr, ext = d / "server.pem", d / "server.key", d / "server.csr", d / "server.ext"
    _openssl("req", "-x509", *_EC, "-keyout", ca_key, "-out", ca, "-subj", "/CN=example device CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    _openssl("req", "-new", *_EC[:-2], "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "3", "-extfile", ext)  # fmt: skip
    return Pki(ca=ca, cert=cert, key=key)
