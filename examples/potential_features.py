"""
Potential features in a scikit-learn Pipeline
=============================================

Points are drawn from a mixture of three Gaussian clusters, and the target is the log of the
mixture's density at each point (with noise). The coordinates alone predict it poorly with a
linear model. The Newtonian potential of the training cloud (unit charges, kernel
1 / (4 pi r)) is a smooth, global summary of where the data are dense, and it predicts it
well. ``PotentialTransformer`` is fitted on each training fold. That builds the tree and the
expansions of the fold's points once; the held-out points are then transformed without a new
tree or upward pass.

Run ``python examples/potential_features.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run.
"""

import os
import time

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from fmmsolve import PotentialTransformer

N = 3_000 if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else 100_000
CENTRES = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 1.0]])
WIDTHS = np.array([1.0, 0.5, 0.8])
SHARES = np.array([0.5, 0.3, 0.2])


def mixture(n, rng):
    """Points of the mixture and the log of its density at them."""
    which = rng.choice(len(SHARES), n, p=SHARES)
    x = CENTRES[which] + WIDTHS[which, None] * rng.standard_normal((n, 3))
    density = sum(s * np.exp(-np.sum((x - c) ** 2, axis=1) / (2 * w * w))
                  / (2 * np.pi * w * w) ** 1.5 for s, c, w in zip(SHARES, CENTRES, WIDTHS))
    return x, np.log(density)


def main():
    rng = np.random.default_rng(0)
    X, y = mixture(N, rng)
    y = y + 0.1 * rng.standard_normal(N)
    models = {
        "coordinates": make_pipeline(StandardScaler(), Ridge()),
        "log potential": make_pipeline(PotentialTransformer(eps=1e-3),
                                       FunctionTransformer(np.log), StandardScaler(), Ridge()),
        "potential and gradient": make_pipeline(PotentialTransformer(eps=1e-3, gradient=True),
                                                StandardScaler(), Ridge()),
    }
    cv = KFold(5, shuffle=True, random_state=0)
    print(f"{N} points, 5-fold cross-validated R^2 of a ridge regression of the log density")
    for name, model in models.items():
        start = time.perf_counter()
        scores = cross_val_score(model, X, y, cv=cv)
        print(f"  {name:<24} R^2 {scores.mean():.3f} +- {scores.std():.3f}   "
              f"({time.perf_counter() - start:.2f} s)")


if __name__ == "__main__":
    main()
