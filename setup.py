"""Build hook for the optional C speedups; all other metadata lives in pyproject.toml.

``optional=True`` makes a failed compile a warning, so ``pip install`` still
succeeds without a C compiler and mgpy falls back to pure Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("mgpy._speedups", sources=["mgpy/_speedups.c"], optional=True),
    ],
)
