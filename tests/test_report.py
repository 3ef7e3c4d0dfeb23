"""The LaTeX/Markdown renderers against stored expected files for a fixed set of rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aebench.report import TABLE1, build_table, load_paper_results, summarise, table3_layout, to_latex, to_markdown

EXPECTED = Path(__file__).parent / "data"


def _rows() -> pd.DataFrame:
    rows = []
    values = {  # (model, attack, metric, higher_is_better): per-budget trial values
        ("vae", "latent", "msssim_paper_target_adv_recon", False): {1.0: [0.50, 0.60], 3.0: [0.70, 0.80]},
        ("robust_gmm_dae", "latent", "msssim_paper_target_adv_recon", False): {1.0: [0.30, 0.40], 3.0: [0.45, 0.55]},
        ("vae", "latent", "msssim_paper_input_adv", False): {1.0: [0.99, 0.97], 3.0: [0.90, 0.92]},
        ("robust_gmm_dae", "latent", "msssim_paper_input_adv", False): {1.0: [0.95, 0.95], 3.0: [0.91, 0.89]},
        ("vae", "max_damage", "msssim_paper_recon_adv_recon", True): {1.0: [0.60, 0.68], 3.0: [0.20, 0.30]},
        ("robust_gmm_dae", "max_damage", "msssim_paper_recon_adv_recon", True): {1.0: [0.90, 0.94], 3.0: [0.80, 0.84]},
        ("vae", "max_damage", "msssim_paper_input_adv", False): {1.0: [0.98, 0.98], 3.0: [0.93, 0.93]},
        ("robust_gmm_dae", "max_damage", "msssim_paper_input_adv", False): {1.0: [0.97, 0.99], 3.0: [0.88, 0.90]},
    }
    for (model, attack, metric, hib), per_budget in values.items():
        for budget, trials in per_budget.items():
            for t, v in enumerate(trials):
                rows.append(dict(dataset="mnist", model=model, attack=attack, optimizer="lbfgs", metric=metric,
                                 budget=budget, trial=t, value=v, higher_is_better=hib))
    return pd.DataFrame(rows)


def test_latex_matches_the_stored_expected_file():
    table = build_table(summarise(_rows()), TABLE1, "lbfgs", "mnist")
    assert to_latex(table) == (EXPECTED / "table1_expected.tex").read_text()


def test_markdown_matches_the_stored_expected_file():
    table = build_table(summarise(_rows()), TABLE1, "lbfgs", "mnist")
    assert to_markdown(table) == (EXPECTED / "table1_expected.md").read_text()


def test_best_value_follows_each_metrics_direction():
    table = build_table(summarise(_rows()), TABLE1, "lbfgs", "mnist")
    index = {(c.metric, b): i for i, (c, b) in enumerate(table.subcolumns)}
    assert table.best(index[("msssim_paper_target_adv_recon", 1.0)]) == "robust_gmm_dae"  # lower is better
    assert table.best(index[("msssim_paper_recon_adv_recon", 3.0)]) == "robust_gmm_dae"  # higher is better
    assert table.best(index[("msssim_paper_recon_adv_recon", 1.0)]) == "robust_gmm_dae"


def test_paper_numbers_appear_in_their_own_column_group():
    paper = load_paper_results("saseendran2022")
    table = build_table(summarise(_rows()), TABLE1, "lbfgs", "mnist", paper)
    index = {(c.metric, b): i for i, (c, b) in enumerate(table.subcolumns)}
    assert table.paper[("vae", index[("msssim_paper_target_adv_recon", 1.0)])] == 0.55  # Table 1, MNIST, VAE
    assert table.paper[("robust_gmm_dae", index[("msssim_paper_recon_adv_recon", 3.0)])] == 0.82
    assert "Paper (reported)" in to_latex(table)


def test_table3_puts_datasets_side_by_side():
    rows = []
    for ds, clean, attacked in (("mnist", 95.0, 90.0), ("svhn", 70.0, 50.0)):
        rows.append(dict(dataset=ds, model="robust_gmm_dae", attack="none", optimizer="none", budget=0.0, trial=0,
                         metric="downstream_clean_accuracy", value=clean, higher_is_better=True))
        for t, v in enumerate((attacked - 1, attacked + 1)):
            rows.append(dict(dataset=ds, model="robust_gmm_dae", attack="latent", optimizer="lbfgs", budget=1.0,
                             trial=t, metric="downstream_attacked_accuracy", value=v, higher_is_better=True))
    table = build_table(summarise(pd.DataFrame(rows)), table3_layout(["mnist", "svhn"]), "lbfgs")
    markdown = to_markdown(table)
    assert "| robust_gmm_dae | **95.00** | **90.00 ± 1.41** | **70.00** | **50.00 ± 1.41** |" in markdown


def test_the_latex_compiles_in_a_plain_article_with_booktabs(tmp_path):
    import shutil
    import subprocess

    import pytest

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    rows = _rows()
    extra = [dict(dataset="mnist", model=m, attack="none", optimizer="none", metric=metric, budget=0.0, trial=0,
                  value=v, higher_is_better=False) for m in ("vae", "robust_gmm_dae")
             for metric, v in (("fd_classifier", 50.0), ("test_recon_mse", 0.01))]
    table = build_table(summarise(pd.concat([rows, pd.DataFrame(extra)])), TABLE1, "lbfgs", "mnist",
                        load_paper_results("saseendran2022"))
    (tmp_path / "table.tex").write_text(to_latex(table))
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                      "\\input{table.tex}\n\\end{document}\n")
    result = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "doc.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
