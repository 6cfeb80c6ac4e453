"""The campaign: the loop over executions, its directory, stats, findings and status screen.

Public API::

    from fuzzer.campaign import Campaign, CampaignDir, Budget, atomic_write
    d = CampaignDir("out")                       # layout: see outdir.py
    c = Campaign(cfg, d, meta, scheduler, actions, factory, Budget(executions=10))
    c.open(resume=False); summary = asyncio.run(c.run())

Modules: ``outdir`` (directory, atomic writes, recovery), ``stats``
(fuzzer_stats, plot_data), ``findings`` (dedup by signature), ``record``
(result -> bundles/queue), ``setup`` (seeds, action space, campaign.toml),
``store`` (what a campaign keeps, crash-safe commits), ``loop`` (the
campaign), ``ui`` (status screen), ``plot``, ``commands``
(the ``run``/``stats``/``plot`` CLI shells).
"""

from fuzzer.campaign.findings import FindingIndex, FindingRecord, signature_hash
from fuzzer.campaign.loop import Budget, Campaign, CampaignSummary
from fuzzer.campaign.outdir import CampaignDir, atomic_write
from fuzzer.campaign.setup import CampaignMeta, action_space_for, derive_seed
from fuzzer.campaign.stats import Progress, parse_stats, read_plot, read_stats
from fuzzer.campaign.store import CampaignStore

__all__ = [
    "Budget",
    "Campaign",
    "CampaignDir",
    "CampaignMeta",
    "CampaignStore",
    "CampaignSummary",
    "FindingIndex",
    "FindingRecord",
    "Progress",
    "action_space_for",
    "atomic_write",
    "derive_seed",
    "parse_stats",
    "read_plot",
    "read_stats",
    "signature_hash",
]
