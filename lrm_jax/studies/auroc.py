"""AUROC of a score as a predictor of correctness, with a bootstrap confidence interval.

AUROC = P(score of a correct instance > score of an incorrect one) + 0.5 P(tie), computed
from ranks (Mann-Whitney U). The interval resamples instances with replacement (percentile
bootstrap, `n_boot` draws, seeded); draws with only one class are dropped.
"""

from __future__ import annotations

import numpy as np


def auroc(scores, labels) -> float:
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_ci(scores, labels, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    s, y = np.asarray(scores, np.float64), np.asarray(labels, bool)
    point = auroc(s, y)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        if y[idx].all() or not y[idx].any():
            continue
        draws.append(auroc(s[idx], y[idx]))
    lo, hi = (np.quantile(draws, [alpha / 2, 1 - alpha / 2]) if draws else (float("nan"), float("nan")))
    return {"auroc": point, "ci_low": float(lo), "ci_high": float(hi), "n_pos": int(y.sum()), "n_neg": int((~y).sum())}
