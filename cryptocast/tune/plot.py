"""The evaluation report as one PNG: what the JSON says, readable at a glance.

Three panels: skill vs persistence per horizon with the standard error over days (is a difference
more than noise?), pooled interval coverage vs its nominal level with the binomial standard error
(are the intervals honest?), and the newest forecasts against the realised prices with their 80 %
and 95 % bands (what a forecast looks like).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGSIZE = (11, 12)
DPI = 100
LEVELS = (80, 95)
BAND_ALPHA = {80: 0.35, 95: 0.15}
SAMPLE_MODELS = 2  # bands of more models at once would hide each other
BASELINE_PREFIX = "persistence"


def _offsets(n: int, width: float = 0.6) -> np.ndarray:
    """Horizontal offsets that spread ``n`` series around each horizon's position."""
    return (np.arange(n) - (n - 1) / 2) * (width / max(n, 1))


def _skill(ax: plt.Axes, report: dict) -> None:
    names = list(report["models"])
    horizons = list(report["models"][names[0]])
    x = np.arange(len(horizons))
    for name, dx in zip(names, _offsets(len(names)), strict=True):
        scores = report["models"][name]
        mean = [scores[h]["daily_skill"] for h in horizons]
        se = [scores[h]["daily_skill_se"] or 0.0 for h in horizons]
        ax.errorbar(x + dx, mean, yerr=se, fmt="o", capsize=3, label=name)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{h} min" for h in horizons])
    ax.set_ylabel("daily skill vs persistence (± SE)")
    ax.set_title("Point skill: 1 − MAE / MAE(persistence of close)")
    ax.legend(fontsize=8)


def _coverage(ax: plt.Axes, report: dict) -> None:
    names = list(report["models"])
    horizons = list(report["models"][names[0]])
    x = np.arange(len(horizons))
    for level, marker in zip(LEVELS, ("o", "s"), strict=True):
        ax.axhline(level / 100, color="grey", linestyle="--", linewidth=0.8)
        for k, (name, dx) in enumerate(zip(names, _offsets(len(names)), strict=True)):
            scores = report["models"][name]
            cov = [scores[h][f"coverage_{level}"] for h in horizons]
            se = [scores[h][f"coverage_{level}_se"] for h in horizons]
            ax.errorbar(x + dx, cov, yerr=se, fmt=marker, capsize=3, color=f"C{k}", label=f"{name} {level} %")
    ax.set_xticks(x, [f"{h} min" for h in horizons])
    ax.set_ylabel("pooled coverage (± binomial SE)")
    ax.set_title("Interval coverage vs nominal 80 % and 95 % (dashed)")
    ax.legend(fontsize=7, ncol=2)


def _sample(ax: plt.Axes, report: dict) -> None:
    sample = report["sample"]
    times = [datetime.fromtimestamp(ms / 1000, UTC) for ms in sample["origin_ms"]]
    # The served forecast and the LSTM; the persistence variants only when nothing else was scored.
    shown = [n for n in sample["models"] if not n.startswith(BASELINE_PREFIX)][:SAMPLE_MODELS] or list(sample["models"])[:1]
    for k, name in enumerate(shown):
        s = sample["models"][name]
        for level in LEVELS:
            ax.fill_between(times, s[f"lower_{level}"], s[f"upper_{level}"], color=f"C{k}", alpha=BAND_ALPHA[level], linewidth=0)
        ax.plot(times, s["point"], color=f"C{k}", linewidth=1, label=f"{name} (80 / 95 % bands)")
    actual = sample["models"][shown[0]]["actual"]
    ax.plot(times, actual, color="black", linewidth=1, label=f"actual close(t + {sample['horizon']})")
    ax.set_xlabel("forecast origin t (UTC)")
    ax.set_ylabel("price")
    ax.set_title(f"Newest {len(times)} forecasts, h = {sample['horizon']} min, plotted at their origin")
    ax.legend(fontsize=8)


def write_png(report: dict, path: Path) -> Path:
    """Draw ``report`` (from :func:`cryptocast.tune.evaluation.evaluate`) into ``path``."""
    fig, axes = plt.subplots(3, 1, figsize=FIGSIZE)
    try:
        _skill(axes[0], report)
        _coverage(axes[1], report)
        _sample(axes[2], report)
        title = f"{report.get('pair', '')} on {report.get('data', '')}: {report['origins']:,} origins, {report['days']} days"
        fig.suptitle(title.strip())
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path
