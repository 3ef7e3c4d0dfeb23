"""The report's trust devices against hand-computed cases: order flags and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aebench.report.trust import bootstrap_difference, order_flags


def _summary(paper: dict[str, float], worst: dict[str, float]) -> pd.DataFrame:
    rows = []
    for metric, values in (("attack_loss_lbfgs", paper), ("attack_loss", worst)):
        for model, mean in values.items():
            rows.append(dict(dataset="d", model=model, attack="max_damage", optimizer="ensemble", metric=metric,
                             budget=3.0, mean=mean, std=0.0, n=10, higher_is_better=True))
    return pd.DataFrame(rows)


def test_order_flags_name_exactly_the_pairs_whose_order_flips():
    # a > b > c under the paper's attack; in the worst case b falls below c and a stays on top.
    flags = order_flags(_summary({"a": -1.0, "b": -2.0, "c": -3.0}, {"a": -1.5, "b": -4.0, "c": -3.5}))
    assert [f.models for f in flags] == [("b", "c")]
    assert "order flips" in flags[0].text() and "λ=3" in flags[0].text()
    assert order_flags(_summary({"a": -1.0, "b": -2.0}, {"a": -1.2, "b": -2.5})) == []


def test_bootstrap_interval_of_a_constant_difference_is_that_constant():
    a = np.linspace(0, 1, 100)
    mean, low, high = bootstrap_difference(a + 0.25, a)
    assert (mean, low, high) == (0.25, 0.25, 0.25) or np.allclose((mean, low, high), 0.25)


def test_bootstrap_interval_matches_the_normal_approximation_for_noise():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.1, 1.0, 4000)
    mean, low, high = bootstrap_difference(diff, np.zeros_like(diff))
    standard_error = diff.std(ddof=1) / np.sqrt(diff.size)
    assert abs(mean - diff.mean()) < 1e-12
    assert abs((high - low) - 2 * 1.96 * standard_error) < 0.15 * (2 * 1.96 * standard_error)
    assert low < diff.mean() < high
