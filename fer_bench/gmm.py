"""A two-component Gaussian mixture on 1-D data, fitted by EM as scikit-learn's
``GaussianMixture(n_components=2)`` does (sklearn/mixture/_base.py ``fit_predict``,
_gaussian_mixture.py ``_estimate_gaussian_parameters``), without the dependency.

As in scikit-learn: the components start from a 2-means split of the data (one-hot
responsibilities, weights n_k / n); each EM iteration is an E-step then an M-step with
n_k + 10 eps and ``reg_covar`` added to each variance; EM stops after ``max_iter``
iterations or once the mean log-likelihood (taken in the E-step) changes by less than
``tol``; the posteriors are those of the last M-step's parameters. One difference: the
2-means is Lloyd's algorithm started from the minimum and the maximum, deterministic,
where scikit-learn seeds k-means++ from a random state.
"""

from __future__ import annotations

import math

import torch

EPS = torch.finfo(torch.float64).eps


def two_means(x: torch.Tensor, max_iter: int = 300) -> torch.Tensor:
    """Which of two clusters each value falls in (bool: the upper one), by Lloyd's
    algorithm from the extremes; stops when the split no longer changes."""
    centres = torch.stack([x.min(), x.max()])
    upper = torch.zeros_like(x, dtype=torch.bool)
    for _ in range(max_iter):
        new = (x - centres[1]).abs() < (x - centres[0]).abs()  # a tie stays lower
        if new.all() or not new.any() or torch.equal(new, upper):
            return new
        upper = new
        centres = torch.stack([x[~upper].mean(), x[upper].mean()])
    return upper


def _fit(x: torch.Tensor, resp: torch.Tensor, reg_covar: float) -> tuple[torch.Tensor, ...]:
    """(n_k, means, variances) from responsibilities (N, 2)."""
    nk = resp.sum(0) + 10 * EPS
    means = resp.T @ x / nk
    variances = (resp * (x[:, None] - means) ** 2).sum(0) / nk + reg_covar
    return nk, means, variances


def _log_resp(x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> tuple[float, torch.Tensor]:
    """(mean log-likelihood, log responsibilities (N, 2))."""
    weights, means, variances = params
    squared = (x[:, None] - means) ** 2 / variances
    log_density = -0.5 * (math.log(2 * math.pi) + variances.log() + squared)
    weighted = log_density + weights.log()
    norm = torch.logsumexp(weighted, dim=1)
    return norm.mean().item(), weighted - norm[:, None]


def fit_two_gaussians(
    values: torch.Tensor, max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights, means, variances) of the fitted mixture, in float64 (the defaults are
    scikit-learn's)."""
    x = values.detach().double().flatten()
    upper = two_means(x)
    resp = torch.stack([~upper, upper], dim=1).double()
    nk, means, variances = _fit(x, resp, reg_covar)
    params = (nk / len(x), means, variances)  # initial weights n_k / n, later n_k / sum n_k
    lower_bound = -math.inf
    for _ in range(max_iter):
        previous = lower_bound
        lower_bound, log_resp = _log_resp(x, params)
        nk, means, variances = _fit(x, log_resp.exp(), reg_covar)
        params = (nk / nk.sum(), means, variances)
        if abs(lower_bound - previous) < tol:
            break
    return params


def component_posterior(values: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """(N, 2) posteriors of each value under fitted ``params`` (``predict_proba``)."""
    return _log_resp(values.detach().double().flatten(), params)[1].exp()


def low_component_posterior(
    values: torch.Tensor, max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6
) -> torch.Tensor:
    """Each value's posterior probability of the component with the smaller mean (the
    defaults are scikit-learn's)."""
    params = fit_two_gaussians(values, max_iter, tol, reg_covar)
    return component_posterior(values, params)[:, int(params[1].argmin())]
