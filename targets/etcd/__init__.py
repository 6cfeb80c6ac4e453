"""etcd (Debian's etcd-server 3.4) as a black-box hbfuzz target.

Modules: ``client`` (v3 JSON gateway client, status, role probe), ``peers``
(URLs, member ids, argv), ``demux`` (re-export of fuzzer.network.demux:
per-destination front ports in front of the TCP mediator), ``logstate``
(ETCD_RULES for fuzzer.tracker.logstate: STATE events from log lines),
``workload`` (register workload recorded as a history). See README.md.
"""
