"""Run Autobahn|Testsuite's `wstest` with every listening socket bound to 127.0.0.1.

Strategy: `wstest -m fuzzingserver` listens through autobahn's `listenWS`, which calls
`reactor.listenTCP(port, factory, backlog, interface='')` -- '' means every interface
(0.0.0.0), and neither the spec nor the command line can change it. Before wstest runs
(and before any reactor is installed), this wrapper replaces `listenTCP` and `listenSSL`
on twisted's `PosixReactorBase`, the base class of every reactor wstest can pick on
POSIX (epoll, poll, select), with versions that force `interface` to 127.0.0.1 unless
the caller already asked for a loopback address. The embedded web UI (`--webport`,
default 8080) goes through the same methods, so it is covered too (run.py disables it
anyway with `--webport 0`).

Usage: exactly like wstest, e.g.
    .venv27/bin/python wstest_local.py -m fuzzingserver -s spec.json --webport 0

Runs under the Python 2.7 of tools/autobahn/.venv27 (syntax kept valid for Python 3 too).
"""
from __future__ import print_function  # noqa: UP010 -- this file runs on Python 2.7

import sys
import warnings

LOOPBACK = "127.0.0.1"
_LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


def _loopback(interface):
    """Return `interface` if it is a loopback address, else 127.0.0.1."""
    return interface if interface in _LOOPBACK_NAMES else LOOPBACK


def patch_listeners():
    """Make PosixReactorBase.listenTCP/listenSSL bind to loopback only."""
    # Importing posixbase does not install a reactor (wstest's choosereactor must
    # still be able to pick one), unlike importing twisted.internet.reactor.
    from twisted.internet import posixbase

    base = posixbase.PosixReactorBase
    orig_tcp = base.listenTCP

    def listenTCP(self, port, factory, backlog=50, interface=""):
        return orig_tcp(self, port, factory, backlog, _loopback(interface))

    base.listenTCP = listenTCP

    orig_ssl = getattr(base, "listenSSL", None)
    if orig_ssl is not None:

        def listenSSL(self, port, factory, contextFactory, backlog=50, interface=""):
            return orig_ssl(self, port, factory, contextFactory, backlog, _loopback(interface))

        base.listenSSL = listenSSL


def main():
    """Patch twisted, then hand over to wstest's own command-line entry point."""
    # cryptography 3.3 warns on every start that Python 2 is unsupported: noise here.
    warnings.filterwarnings("ignore", message=".*Python 2 is no longer supported.*")
    patch_listeners()
    from autobahntestsuite.wstest import run

    sys.argv[0] = "wstest"
    return run()


if __name__ == "__main__":
    sys.exit(main())
