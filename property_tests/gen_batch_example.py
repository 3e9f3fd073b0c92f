"""Generators for `--distribution` tests: a good one and bad ones."""
import numpy as np


def good(seed: int, batch: int) -> dict:
    rng = np.random.default_rng(seed)
    S, A, d = 3, 2, 6
    return dict(T=rng.dirichlet(np.ones(S), size=(batch, S, A)), R=rng.uniform(-1, 1, (batch, S, A)),
                gamma=np.full(batch, 0.5), rho0=np.full((batch, S), 1 / S),
                features=rng.uniform(-1, 1, (batch, S, A, d)))


def raises(seed: int, batch: int) -> dict:
    raise RuntimeError("boom")


def gamma_one(seed: int, batch: int) -> dict:
    return good(seed, batch) | {"gamma": np.ones(batch)}


def wrong_batch(seed: int, batch: int) -> dict:
    return good(seed, batch + 1)
