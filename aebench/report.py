"""Render a run folder's rows as the paper's tables (LaTeX booktabs and Markdown) and figures.

Table 1 of Saseendran et al. (NeurIPS 2022): MS-SSIM columns of the latent-space and maximum-damage
attacks at each budget λ, mean ± std over trials, ↑/↓ in the headers, the best value in bold.
Figure 2: attack loss against λ per model (mean ± std band). Figure 3: input, clean reconstruction,
adversarial input, adversarial reconstruction and target, from the example images a run keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from aebench.results import CELLS_DIR, read_rows  # noqa: E402

ATTACK_TITLES = {"latent": "Latent space attack", "max_damage": "Maximum damage attack"}
ATTACK_SHORT = {"latent": "latent", "max_damage": "max-damage"}


@dataclass(frozen=True)
class Column:
    """One metric column group of a table (one sub-column per budget)."""

    attack: str
    metric: str
    latex: str
    markdown: str


TABLE1 = (
    Column("latent", "msssim_paper_target_adv_recon", r"MSSSIM$(x_r, \tilde{x}_a)$", "MSSSIM(x_r, x̃_a)"),
    Column("latent", "msssim_paper_input_adv", r"MSSSIM$(x_r, x_a)$", "MSSSIM(x_r, x_a)"),
    Column("max_damage", "msssim_paper_recon_adv_recon", r"MSSSIM$(\tilde{x}_r, \tilde{x}_a)$", "MSSSIM(x̃_r, x̃_a)"),
    Column("max_damage", "msssim_paper_input_adv", r"MSSSIM$(x_r, x_a)$", "MSSSIM(x_r, x_a)"),
)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (over trials) and trial count per dataset, model, attack, optimizer, metric and budget."""
    keys = ["dataset", "model", "attack", "optimizer", "metric", "budget"]
    grouped = rows.groupby(keys, sort=False)
    summary = grouped["value"].agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                                   n="count").reset_index()
    summary["higher_is_better"] = grouped["higher_is_better"].first().values
    return summary


@dataclass
class TableData:
    """A rendered-ready table: models × (column, budget) cells of (mean, std), plus best-value flags."""

    dataset: str
    optimizer: str
    columns: tuple[Column, ...]
    budgets: tuple[float, ...]
    models: list[str]
    cells: dict[tuple[str, str, str, float], tuple[float, float]]
    higher: dict[tuple[str, str], bool]

    def best(self, column: Column, budget: float) -> str | None:
        """The model with the best mean in a (column, budget), or None if there is no value."""
        values = {m: self.cells[(m, column.attack, column.metric, budget)][0] for m in self.models
                  if (m, column.attack, column.metric, budget) in self.cells}
        if not values:
            return None
        pick = max if self.higher.get((column.attack, column.metric), True) else min
        return pick(values, key=values.get)


def build_table(summary: pd.DataFrame, dataset: str, optimizer: str, columns: tuple[Column, ...] = TABLE1) -> TableData:
    """Collect one dataset/optimizer slice of a summary into a :class:`TableData`."""
    part = summary[(summary.dataset == dataset) & (summary.optimizer == optimizer)]
    budgets = tuple(sorted(part.budget.unique()))
    cells = {(r.model, r.attack, r.metric, r.budget): (r.mean, r.std) for r in part.itertuples()}
    higher = {(r.attack, r.metric): bool(r.higher_is_better) for r in part.itertuples()}
    models = list(dict.fromkeys(summary[summary.dataset == dataset].model))
    return TableData(dataset, optimizer, columns, budgets, models, cells, higher)


def _fmt(value: tuple[float, float] | None, digits: int) -> str:
    return "–" if value is None else f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def to_latex(table: TableData, digits: int = 2) -> str:
    """Booktabs LaTeX of Table 1's layout: attack groups, metric groups with ↑/↓, one column per λ."""
    nb = len(table.budgets)
    groups = list(dict.fromkeys(c.attack for c in table.columns))
    lines = [r"\begin{tabular}{l" + (" " + "c" * nb) * len(table.columns) + "}", r"\toprule"]
    head, rules, col = [""], [], 2
    for attack in groups:
        width = nb * sum(c.attack == attack for c in table.columns)
        head.append(rf"\multicolumn{{{width}}}{{c}}{{{ATTACK_TITLES.get(attack, attack)}}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + width - 1}}}")
        col += width
    lines += [" & ".join(head) + r" \\", " ".join(rules)]
    head, rules, col = [""], [], 2
    for c in table.columns:
        arrow = r"$\uparrow$" if table.higher.get((c.attack, c.metric), True) else r"$\downarrow$"
        head.append(rf"\multicolumn{{{nb}}}{{c}}{{{c.latex} ({arrow})}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + nb - 1}}}")
        col += nb
    lines += [" & ".join(head) + r" \\", " ".join(rules)]
    lines.append(" & ".join(["Model"] + [f"{b:g}" for _ in table.columns for b in table.budgets]) + r" \\")
    lines.append(r"\midrule")
    for model in table.models:
        cells = [_latex_escape(model)]
        for c in table.columns:
            for b in table.budgets:
                value = table.cells.get((model, c.attack, c.metric, b))
                text = "--" if value is None else f"{value[0]:.{digits}f} $\\pm$ {value[1]:.{digits}f}"
                cells.append(rf"\textbf{{{text}}}" if value is not None and table.best(c, b) == model else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_markdown(table: TableData, digits: int = 2) -> str:
    """GitHub Markdown version of :func:`to_latex` (one header row: attack · metric ↑/↓ · λ)."""
    header = ["model"]
    for c in table.columns:
        arrow = "↑" if table.higher.get((c.attack, c.metric), True) else "↓"
        header += [f"{ATTACK_SHORT.get(c.attack, c.attack)} {c.markdown} {arrow} λ={b:g}"
                   for b in table.budgets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in table.models:
        cells = [model]
        for c in table.columns:
            for b in table.budgets:
                value = table.cells.get((model, c.attack, c.metric, b))
                text = _fmt(value, digits)
                cells.append(f"**{text}**" if value is not None and table.best(c, b) == model else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure_attack_loss(summary: pd.DataFrame, dataset: str, optimizer: str, path_stem: Path) -> list[Path]:
    """Figure 2: attack loss against λ per model, one panel per attack, mean ± std band."""
    part = summary[(summary.dataset == dataset) & (summary.optimizer == optimizer) & (summary.metric == "attack_loss")]
    attacks = list(dict.fromkeys(part.attack))
    if not attacks:
        return []
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.4), squeeze=False)
    for ax, attack in zip(axes[0], attacks):
        for model, group in part[part.attack == attack].groupby("model", sort=False):
            group = group.sort_values("budget")
            ax.plot(group.budget, group["mean"], marker="o", label=model)
            ax.fill_between(group.budget, group["mean"] - group["std"], group["mean"] + group["std"], alpha=0.2)
        ax.set_title(f"{ATTACK_TITLES.get(attack, attack)} ({dataset})")
        ax.set_xlabel("budget λ (L2)")
        ax.set_ylabel("attack loss (higher = more robust)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path_stem)


def figure_examples(run_dir: Path, dataset: str, optimizer: str, path_stem: Path) -> list[Path]:
    """Figure 3: per model and attack, the first example at the largest budget (x, x̃_r, x_a, x̃_a, x_t)."""
    rows = []
    for npz_path in sorted((run_dir / CELLS_DIR).glob(f"{dataset}__*.examples.npz")):
        model = npz_path.name.split("__")[1]
        with np.load(npz_path) as store:
            keys = [k for k in store.files if k.split("/")[1] == optimizer]
            for attack in dict.fromkeys(k.split("/")[0] for k in keys):
                budget = max((k.split("/")[2] for k in keys if k.startswith(attack + "/")), key=float)
                prefix = f"{attack}/{optimizer}/{budget}/"
                images = [store[prefix + n][0] if prefix + n in store.files else None
                          for n in ("x", "recon", "x_adv", "adv_recon", "target")]
                rows.append((f"{model}\n{attack} λ={budget}", images))
    if not rows:
        return []
    titles = ["input x", "clean recon.", "adversarial x_a", "adv. recon.", "target x_t"]
    fig, axes = plt.subplots(len(rows), 5, figsize=(7.5, 1.6 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if image is not None:
                ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    return _save_figure(fig, path_stem)


def _save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths


def render_report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write every table and figure of a run folder into ``out_dir`` (default ``RUN_DIR/report``).

    Raises:
        FileNotFoundError: If the folder holds no result rows.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "report"
    rows = read_rows(run_dir)
    if rows.empty:
        raise FileNotFoundError(f"{run_dir} holds no result rows yet; run `aebench run SUITE` first.")
    summary = summarise(rows[rows.attack != "none"])
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False)
    written.append(out / "summary.csv")
    for dataset in dict.fromkeys(summary.dataset):
        for optimizer in dict.fromkeys(summary[summary.dataset == dataset].optimizer):
            table = build_table(summary, dataset, optimizer)
            stem = out / f"table1_{dataset}_{optimizer}"
            stem.with_suffix(".tex").write_text(to_latex(table))
            stem.with_suffix(".md").write_text(to_markdown(table))
            written += [stem.with_suffix(".tex"), stem.with_suffix(".md")]
            written += figure_attack_loss(summary, dataset, optimizer, out / f"figure2_{dataset}_{optimizer}")
            if optimizer != "noise":
                written += figure_examples(run_dir, dataset, optimizer, out / f"figure3_{dataset}_{optimizer}")
    return written
