"""The report's trust devices against hand-computed cases: the worst case, order flags and bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aebench.report.trust import WORST, bootstrap_difference, order_flags, worst_case


def _summary(paper: dict[str, float], worst: dict[str, float]) -> pd.DataFrame:
    rows = []
    for metric, values in (("attack_loss_lbfgs", paper), ("attack_loss", worst)):
        for model, mean in values.items():
            rows.append(dict(dataset="d", model=model, attack="max_damage", optimizer=WORST, metric=metric,
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


def _attack_run(run_dir: Path, values: dict[str, dict[str, np.ndarray]], attack: str = "max_damage",
                budget: float = 3.0) -> pd.DataFrame:
    """A run folder with one cell whose attacks stored ``values`` per image; the rows that name them."""
    cell = run_dir / "cells" / "d__m__s0"
    cell.mkdir(parents=True, exist_ok=True)
    rows = []
    for optimizer, metrics in values.items():
        name = f"attack-{attack}-{optimizer}-{budget:g}"
        np.savez(cell / f"{name}.values.npz", **metrics)
        for metric, array in metrics.items():
            rows += [dict(dataset="d", model="m", seed=0, measurement=name, attack=attack, optimizer=optimizer,
                          budget=budget, trial=t, metric=metric, value=float(v), higher_is_better=True)
                     for t, v in enumerate(array.mean(axis=1))]
    return pd.DataFrame(rows)


def test_worst_case_takes_every_image_from_the_attack_that_minimised_it(tmp_path):
    rng = np.random.default_rng(0)
    objectives = {o: -rng.uniform(1, 5, (2, 30)) for o in ("lbfgs", "ensemble", "pgd")}
    msssim = {o: rng.uniform(0, 1, (2, 30)) for o in objectives}
    values = {o: {"attack_loss": objectives[o], "msssim_paper_recon_adv_recon": msssim[o]} for o in objectives}
    values["noise"] = {"attack_loss": np.full((2, 30), -100.0), "msssim_paper_recon_adv_recon": np.zeros((2, 30))}
    result = worst_case(_attack_run(tmp_path, values), tmp_path)
    by = result.rows.pivot_table(index="trial", columns="metric", values="value")
    # Brute force, image by image: the lowest objective of the three attacks (noise is no attack) and its MS-SSIM.
    loss, score = np.empty((2, 30)), np.empty((2, 30))
    for t in range(2):
        for i in range(30):
            best = min(("lbfgs", "ensemble", "pgd"), key=lambda o: objectives[o][t, i])
            loss[t, i], score[t, i] = objectives[best][t, i], msssim[best][t, i]
    assert np.allclose(by["attack_loss"], loss.mean(axis=1))
    assert np.allclose(by["msssim_paper_recon_adv_recon"], score.mean(axis=1))
    assert np.allclose(by["attack_loss_lbfgs"], objectives["lbfgs"].mean(axis=1))
    assert np.allclose(by["attack_gap_lbfgs"], (objectives["lbfgs"] - loss).mean(axis=1))
    assert np.isclose(by["attack_gap_max_lbfgs"].dropna().iloc[0], (objectives["lbfgs"] - loss).max())
    counts = result.found_by[("d", "max_damage", 3.0)]
    assert counts["images"] == 60
    assert counts["lbfgs"] == int((objectives["lbfgs"] == loss).sum()) and "noise" not in counts
    assert np.allclose(result.per_image[("d", "m", "attack-max_damage-worst-3")]["attack_loss"], loss.reshape(-1))


def test_worst_case_skips_attacks_on_other_images_and_cells_without_a_second_attack(tmp_path):
    a, b = np.full((2, 10), -1.0), np.full((2, 12), -2.0)
    mismatched = _attack_run(tmp_path, {"lbfgs": {"attack_loss": a}, "pgd": {"attack_loss": b}})
    assert worst_case(mismatched, tmp_path).rows.empty  # 10 vs 12 images: not the same pairs
    alone = _attack_run(tmp_path / "alone", {"pgd": {"attack_loss": a}})
    assert worst_case(alone, tmp_path / "alone").rows.empty


def test_an_audit_without_a_worst_case_still_renders_its_collapse_columns(tmp_path):
    """A suite with one attack per kind has no worst case; the audit keeps the clean columns and says what to add."""
    from aebench.report import _write_audit
    from aebench.report.trust import WorstCase

    alone = worst_case(_attack_run(tmp_path, {"lbfgs": {"attack_loss": np.full((2, 5), -1.0)}}), tmp_path)
    assert alone.rows.empty and list(alone.rows.columns) == list(WorstCase().rows.columns)
    summary = pd.DataFrame([dict(dataset="d", model="m", attack="none", optimizer="none", metric="test_recon_mse",
                                 budget=0.0, mean=0.1, std=0.0, n=1, higher_is_better=False)])
    written = _write_audit(alone, summary, tmp_path, tmp_path, ["d"], [])
    text = (tmp_path / "audit_latent_d.md").read_text()
    assert tmp_path / "audit_latent_d.md" in written and "recon. MSE" in text and "No `lbfgs` measurement" in text
