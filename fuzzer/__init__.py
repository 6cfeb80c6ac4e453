"""hbfuzz: a greybox fuzzer for distributed systems guided by happens-before coverage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hbfuzz")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
