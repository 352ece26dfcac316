"""The one model fitter the project uses: L2-regularised logistic regression by Newton's method.

Used by the benchmark scripts (the sentence scorer's pairwise weights) and rag.conversation
(the follow-up model, a standardised model: fit_standardised and its storage); numpy only.
"""

from __future__ import annotations

import numpy as np


def logistic_regression(X: np.ndarray, y: np.ndarray, C: float = 1.0, intercept: bool = False,
                        max_iter: int = 100) -> tuple[np.ndarray, float]:
    """(weights, intercept) minimising ½‖w‖² + C·Σ log-loss — sklearn's LogisticRegression(C=C,
    fit_intercept=intercept), the intercept not shrunk. The objective is strictly convex, so
    Newton's method finds its unique minimum."""
    X = np.asarray(X, np.float64)
    if intercept:
        X = np.hstack([X, np.ones((len(X), 1))])
    shrink = np.ones(X.shape[1])
    if intercept:
        shrink[-1] = 0.0
    w = np.zeros(X.shape[1])
    for _ in range(max_iter):
        p = 0.5 * (1 + np.tanh(0.5 * (X @ w)))  # the sigmoid, without overflow
        grad = C * (X.T @ (p - y)) + shrink * w
        hess = C * (X.T * (p * (1 - p))) @ X + np.diag(shrink) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return (w[:-1], float(w[-1])) if intercept else (w, 0.0)


def pairwise_weights(features: list[np.ndarray], labels: list[np.ndarray], negatives: int = 12,
                     seed: int = 0) -> np.ndarray:
    """Ranking weights (RankNet-style): within each question, a candidate holding the answer
    (label True) should outscore one that does not. Per question, every positive is paired
    with up to `negatives` random negatives; questions with no positive or no negative are
    skipped. Learns ranking, not calibration."""
    rng = np.random.default_rng(seed)
    diffs = []
    for x, y in zip(features, labels, strict=True):
        if not y.any() or y.all():
            continue
        pos, neg = x[y], x[~y]
        neg = neg[rng.permutation(len(neg))[:negatives]]
        diffs.append((pos[:, None, :] - neg[None, :, :]).reshape(-1, x.shape[1]))
    X = np.concatenate(diffs)
    X = np.concatenate([X, -X])
    w, _ = logistic_regression(X, np.concatenate([np.ones(len(X) // 2), np.zeros(len(X) // 2)]), C=1.0)
    return w


def fit_standardised(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, coef, bias) of a logistic regression on standardised features: the
    log-odds of a row x are ((x − mean) / scale) · coef + bias (float32 arrays)."""
    mean, scale = X.mean(0), X.std(0)
    scale[scale < 1e-6] = 1.0
    coef, bias = logistic_regression((X - mean) / scale, y, C=C, intercept=True)
    return mean.astype(np.float32), scale.astype(np.float32), coef.astype(np.float32), float(bias)


def standardised_to_dict(features, mean, scale, coef, bias: float) -> dict:
    """A standardised logistic model as stored in rag/calibration.json."""
    return {"features": list(features), "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
            "coef": coef.round(6).tolist(), "bias": round(bias, 6)}


def standardised_from_dict(d: dict, features, refit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, coef, bias) stored by standardised_to_dict; ValueError saying `refit`
    when it was fitted on other features."""
    if list(d.get("features", [])) != list(features):
        raise ValueError(f"the stored model was fitted on other features: {refit}")
    return (np.array(d["mean"], np.float32), np.array(d["scale"], np.float32),
            np.array(d["coef"], np.float32), float(d["bias"]))
