"""Matplotlib figures in the paper's layouts (headless: the Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def necessity_curves(summary: dict, path: Path) -> None:
    """Accuracy and agreement with the full answer against k, one line per intervention."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for kind, v in summary["per_k"].items():
        ks = range(len(v["accuracy"]))
        axes[0].plot(ks, v["accuracy"], marker="o", label=kind)
        axes[1].plot(ks, v["agreement"], marker="o", label=kind)
    axes[0].set(title="accuracy (gold)", xlabel="k thoughts / steps kept", ylim=(0, 1.02))
    axes[1].set(title="same answer as full reasoning", xlabel="k thoughts / steps kept", ylim=(0, 1.02))
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{summary['label']}: necessity of the reasoning")
    _save(fig, path)


def figure2(summaries: Sequence[dict], path: Path, labels: Sequence[str] | None = None) -> None:
    """The paper's Figure 2: % of reasoning tokens needed, solid to the first match, hatched to
    the stable match, SD as error bars; one bar per model."""
    labels = labels or [s.get("name", s["label"]) for s in summaries]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(summaries), 3.6))
    xs = range(len(summaries))
    first = [s["first_match_pct_mean"] for s in summaries]
    stable = [s["stable_match_pct_mean"] for s in summaries]
    ax.bar(xs, stable, color="none", edgecolor="tab:blue", hatch="//", label="stable match")
    ax.bar(xs, first, color="tab:blue", label="first match",
           yerr=[s["first_match_pct_sd"] for s in summaries], capsize=3)
    ax.errorbar([x + 0.15 for x in xs], stable, yerr=[s["stable_match_pct_sd"] for s in summaries],
                fmt="none", ecolor="gray", capsize=3)
    ax.set_xticks(list(xs), labels, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="% of reasoning tokens to output final answer", ylim=(0, 110))
    ax.legend(fontsize=8)
    _save(fig, path)


def found_rates(groups: dict[str, dict[str, float]], path: Path, title: str, ylabel: str) -> None:
    """Grouped bars: {group: {bar label: rate in [0, 1]}} (Figures 5 and 6)."""
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(groups), 3.6))
    bars = sorted({b for g in groups.values() for b in g})
    width = 0.8 / max(len(bars), 1)
    for j, b in enumerate(bars):
        xs = [i + j * width for i in range(len(groups))]
        ax.bar(xs, [100 * groups[g].get(b, 0.0) for g in groups], width, label=b)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], list(groups), fontsize=8)
    ax.set(ylabel=ylabel, ylim=(0, 105), title=title)
    ax.legend(fontsize=7)
    _save(fig, path)


def dumbbell(rows: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """One row per model, one dot per mode ({row label: {mode: accuracy in [0, 1]}}), a bar
    spanning the modes: the paper's multi-mode figure."""
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.5 * len(rows)))
    # The latent mode is a hollow ring drawn over the others: it often sits on the direct mode.
    style = {"direct": dict(marker="s", color="C2"), "verbal": dict(marker="^", color="C1"),
             "latent": dict(marker="o", facecolors="none", edgecolors="C0", linewidths=2, s=130, zorder=3)}
    for y, accs in enumerate(rows.values()):
        xs = [100 * v for v in accs.values()]
        ax.plot([min(xs), max(xs)], [y, y], color="0.7", lw=3, zorder=1)
        for mode, v in accs.items():
            kw = {"s": 60, "zorder": 2, **style.get(mode, dict(marker="D"))}
            ax.scatter(100 * v, y, label=mode if y == 0 else None, **kw)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.set(xlabel="accuracy (%)", xlim=(0, 102), ylim=(-0.7, len(rows) - 0.3), title=title)
    ax.legend(fontsize=7, loc="lower left")
    _save(fig, path)
