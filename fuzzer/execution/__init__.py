"""One execution of a target: cluster, workload, fault steps, oracles (see runner.py).

Public API::

    from fuzzer.execution import Execution, ExecutionResult, RecordedChoices

    async with Execution(cfg, workdir, seed, tracker=server, coverage=cov) as ex:
        summary = await ex.step(Step(parse_fault("partition majority-minority"), 1.0))
        result = await ex.finish()
    # or: result = await Execution(cfg, workdir, seed).run(schedule)

gRPC's fork support must be off in the fuzzer process: with it on, every node
start forks a process whose gRPC threads are re-created in the child and
abort (SIGABRT) when the child closes its descriptors before ``exec``. It is
read at the first gRPC use, so it is set here, before any server starts.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from fuzzer.execution.adapters import KvClient, RoleProbe, make_client_factory, make_role_probe
from fuzzer.execution.result import (
    ExecutionResult,
    ExecutionStats,
    Finding,
    RecordedChoices,
    abstract_context,
    signature,
)
from fuzzer.execution.runner import Execution, new_execution_id

__all__ = [
    "Execution",
    "ExecutionResult",
    "ExecutionStats",
    "Finding",
    "RecordedChoices",
    "KvClient",
    "RoleProbe",
    "abstract_context",
    "make_client_factory",
    "make_role_probe",
    "new_execution_id",
    "signature",
]
