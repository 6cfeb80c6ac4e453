"""Build hook for the optional C accelerator of the instrumentation's recording path.

Everything else about the package lives in pyproject.toml. The extension is
``optional``: when it cannot be compiled (no C compiler, no Python headers)
the install still succeeds and ``instrumentation`` uses its pure-Python path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "instrumentation._fast",
            sources=["instrumentation/_fast.c"],
            optional=True,
        )
    ]
)
