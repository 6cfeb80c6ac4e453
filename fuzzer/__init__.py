"""hbfuzz: a greybox fuzzer for distributed systems guided by happens-before coverage."""

import os as _os
from importlib.metadata import PackageNotFoundError, version

# The fuzzer starts node processes while the tracker's gRPC server threads run.
# gRPC's fork handlers can abort a freshly forked child (SIGABRT before exec);
# we never use gRPC in a forked child, so turn them off for every entry point
# (CLI, replay, gymnasium env, benchmarks, tests) before grpc is imported.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

try:
    __version__ = version("hbfuzz")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
