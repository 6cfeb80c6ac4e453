"""``hbfuzz plot``: a PNG of coverage and findings over time from ``plot_data``.

Why matplotlib with the Agg backend: a headless PNG writer that needs no
display (CI, servers); the figure is small and static, so nothing fancier is
needed. Two panels share the time axis: HB coverage and code edges (left
and right axes), then queue size and findings.
"""

from __future__ import annotations

from pathlib import Path

from fuzzer.campaign.stats import read_plot
from fuzzer.errors import InputError, UsageError

__all__ = ["write_plot"]


def write_plot(plot_data: str | Path, out: str | Path, title: str = "hbfuzz campaign") -> Path:
    """Render ``plot_data`` to ``out`` (PNG). InputError when there are no rows."""
    rows = read_plot(plot_data)
    if not rows:
        raise InputError("plot_data has no rows yet", path=str(plot_data))
    try:
        import matplotlib
    except ImportError:
        raise UsageError("hbfuzz plot needs matplotlib: .venv/bin/pip install matplotlib") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["relative_time"] / 60.0 for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    try:
        ax1.plot(t, [r["hb_coverage"] for r in rows], color="tab:blue", label="HB coverage")
        ax1.set_ylabel("HB coverage (map cells)", color="tab:blue")
        ax1b = ax1.twinx()
        ax1b.plot(t, [r["code_edges"] for r in rows], color="tab:orange", label="code edges")
        ax1b.set_ylabel("code edges", color="tab:orange")
        ax1.set_title(title)
        ax1.grid(alpha=0.3)
        ax2.plot(t, [r["corpus_count"] for r in rows], color="tab:green", label="queue")
        ax2.step(t, [r["saved_crashes"] for r in rows], where="post", color="tab:red",
                 label="safety findings")
        ax2.step(t, [r["saved_hangs"] for r in rows], where="post", color="tab:purple",
                 label="liveness findings")
        ax2.set_xlabel("time (minutes)")
        ax2.set_ylabel("count")
        ax2.legend(loc="upper left")
        ax2.grid(alpha=0.3)
        fig.tight_layout()
        p = Path(out)
        tmp = p.with_name(f".tmp-{p.name}")
        fig.savefig(tmp, format="png", dpi=100)
        tmp.replace(p)
    finally:
        plt.close(fig)
    return p
