"""Cluster control: templates (spec), processes (supervisor), no orphans (reaper), ports."""

from fuzzer.cluster.clock import ClockSetting
from fuzzer.cluster.ports import PortLease, lease_ports
from fuzzer.cluster.process import NodeExit
from fuzzer.cluster.spec import ClusterSpec, NodeSpec, Readiness, render_node
from fuzzer.cluster.specload import spec_from_dict
from fuzzer.cluster.supervisor import Supervisor

__all__ = [
    "ClockSetting",
    "ClusterSpec",
    "NodeExit",
    "NodeSpec",
    "PortLease",
    "Readiness",
    "Supervisor",
    "lease_ports",
    "render_node",
    "spec_from_dict",
]
