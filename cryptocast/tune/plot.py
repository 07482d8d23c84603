"""The evaluation report as one PNG: what the JSON says, readable at a glance.

Five panels: skill vs persistence per horizon with the standard error over days (is a difference
more than noise?), pooled interval coverage vs its nominal level with the binomial standard error
(are the intervals honest?), reliability — observed against nominal coverage for every model and
horizon — and coverage by UTC hour of the first model with day-block standard errors (do they hold
at the US open as well as at night?), then the newest forecasts against the realised prices with
their 80 % and 95 % bands (what a forecast looks like).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers

import matplotlib.pyplot as plt
import numpy as np

FIGSIZE = (11, 20)
HOURS = 24
TITLE_SPACE = 0.985  # of the figure's height left to the panels, below the overall title
HOUR_LEVEL = 80  # the band whose coverage is drawn per hour
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


def _reliability(ax: plt.Axes, report: dict) -> None:
    names = list(report["models"])
    horizons = list(report["models"][names[0]])
    nominal = np.array(LEVELS) / 100
    ax.plot([0.7, 1.0], [0.7, 1.0], color="black", linewidth=0.8, label="perfect calibration")
    for k, (name, dx) in enumerate(zip(names, _offsets(len(names), 0.008), strict=True)):
        for m, h in enumerate(horizons):
            s = report["models"][name][h]
            observed = [s[f"coverage_{level}"] for level in LEVELS]
            se = [s[f"coverage_{level}_se"] for level in LEVELS]
            ax.errorbar(
                nominal + dx + (m - 1.5) * 0.0008,
                observed,
                yerr=se,
                fmt="os^v"[m % 4],
                color=f"C{k}",
                capsize=2,
                markersize=4,
                label=f"{name}" if m == 0 else None,
            )
    ax.set_xlabel("nominal coverage (markers ○ □ △ ▽: h = " + ", ".join(horizons) + " min)")
    ax.set_ylabel("observed coverage (± binomial SE)")
    ax.set_title("Reliability: observed vs nominal coverage of the 80 % and 95 % bands")
    ax.legend(fontsize=7)


def _by_hour(ax: plt.Axes, report: dict) -> None:
    name = next(iter(report["models"]))
    hours = np.arange(HOURS)
    for k, (h, s) in enumerate(report["models"][name].items()):
        groups = s[f"by_hour_{HOUR_LEVEL}"]
        cov = np.array([np.nan if c is None else c for c in groups["coverage"]])
        se = np.array([0.0 if e is None else e for e in groups["se"]])
        ax.errorbar(
            hours + (k - 1.5) * 0.15,
            cov,
            yerr=se,
            fmt="o-",
            markersize=3,
            capsize=2,
            linewidth=0.8,
            color=f"C{k}",
            label=f"h = {h} min",
        )
    ax.axhline(HOUR_LEVEL / 100, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(hours)
    ax.set_xlabel("hour of the forecast origin (UTC)")
    ax.set_ylabel(f"{HOUR_LEVEL} % coverage (± day-block SE)")
    ax.set_title(f"{name}: {HOUR_LEVEL} % band coverage by hour of day")
    ax.legend(fontsize=8, ncol=4)


def _sample(ax: plt.Axes, report: dict) -> None:
    sample = report["sample"]
    times = np.array([datetime.fromtimestamp(ms / 1000, UTC) for ms in sample["origin_ms"]])  # x: datetimes
    # The served forecast and the LSTM; the persistence variants only when nothing else was scored.
    shown = [n for n in sample["models"] if not n.startswith(BASELINE_PREFIX)][:SAMPLE_MODELS] or list(
        sample["models"]
    )[:1]
    for k, name in enumerate(shown):
        s = sample["models"][name]
        for level in LEVELS:
            ax.fill_between(
                times,
                s[f"lower_{level}"],
                s[f"upper_{level}"],
                color=f"C{k}",
                alpha=BAND_ALPHA[level],
                linewidth=0,
            )
        ax.plot(times, s["point"], color=f"C{k}", linewidth=1, label=f"{name} (80 / 95 % bands)")
    actual = sample["models"][shown[0]]["actual"]
    ax.plot(times, actual, color="black", linewidth=1, label=f"actual close(t + {sample['horizon']})")
    ax.set_xlabel("forecast origin t (UTC)")
    ax.set_ylabel("price")
    ax.set_title(f"Newest {len(times)} forecasts, h = {sample['horizon']} min, plotted at their origin")
    ax.legend(fontsize=8)


def write_png(report: dict, path: Path) -> Path:
    """Draw ``report`` (from :func:`cryptocast.tune.evaluation.evaluate`) into ``path``."""
    fig, axes = plt.subplots(5, 1, figsize=FIGSIZE)
    try:
        _skill(axes[0], report)
        _coverage(axes[1], report)
        _reliability(axes[2], report)
        _by_hour(axes[3], report)
        _sample(axes[4], report)
        title = f"{report.get('pair', '')} on {report.get('data', '')}: {report['origins']:,} origins, {report['days']} days"
        fig.suptitle(title.strip())
        fig.tight_layout(rect=(0, 0, 1, TITLE_SPACE))
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path
