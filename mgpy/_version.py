"""mgpy's version, with one source: ``version`` in pyproject.toml.

An installed mgpy (wheel, sdist or editable install) carries that version in its
distribution metadata, read here with ``importlib.metadata`` under the distribution
name ``mgpy-net`` (the import name is ``mgpy``).  A source tree imported without being
installed (``PYTHONPATH=.``) has no metadata: the version is then read from the
pyproject.toml next to the package, if it is mgpy's.  Anything else gives
``0+unknown`` rather than failing an import.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

#: the name mgpy is published under (``pip install mgpy-net``)
DISTRIBUTION = "mgpy-net"

_NAME = re.compile(r'^name\s*=\s*"([^"]+)"\s*$', re.M)
_VERSION = re.compile(r'^version\s*=\s*"([^"]+)"\s*$', re.M)


def _source_tree_version() -> str | None:
    """The version in ``../pyproject.toml`` when that file declares this distribution."""
    try:
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    name, version = _NAME.search(text), _VERSION.search(text)
    if name is None or version is None or name.group(1) != DISTRIBUTION:
        return None
    return version.group(1)


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return _source_tree_version() or "0+unknown"


__version__: str = _version()
