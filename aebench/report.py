"""Render a run folder's rows as the paper's tables (LaTeX booktabs and Markdown) and figures.

Table 1 of Saseendran et al. (NeurIPS 2022): MS-SSIM columns of the latent-space and maximum-damage
attacks at each budget λ, mean ± std over trials, ↑/↓ in the headers, the best value in bold.
Figure 2: attack loss against λ per model (mean ± std band). Figure 3: input, clean reconstruction,
adversarial input, adversarial reconstruction and target, from the example images a run keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from aebench.results import CELLS_DIR, read_rows  # noqa: E402

ATTACK_TITLES = {"latent": "Latent space attack", "max_damage": "Maximum damage attack"}
ATTACK_SHORT = {ATTACK_TITLES["latent"]: "latent", ATTACK_TITLES["max_damage"]: "max-damage", "Fidelity": ""}


@dataclass(frozen=True)
class Column:
    """One metric column of a table: one sub-column per budget, or a single one for scalar metrics.

    Args:
        attack: Attack kind of the rows ("none" for per-model numbers such as fidelity).
        metric: Metric name in the rows.
        latex: Header in LaTeX.
        markdown: Header in Markdown.
        group: Top header spanning consecutive columns with the same group.
        budget: For a scalar column of an attack metric, the one budget shown (e.g. λ = 1 in Table 3).
        dataset: Restrict the column to one dataset (Table 3 puts datasets side by side).
    """

    attack: str
    metric: str
    latex: str
    markdown: str
    group: str = ""
    budget: float | None = None
    dataset: str | None = None

    @property
    def per_budget(self) -> bool:
        """Whether the column spreads over every budget of the run."""
        return self.attack != "none" and self.budget is None


@dataclass(frozen=True)
class Layout:
    """A table of the paper: its name, caption and columns."""

    name: str
    caption: str
    columns: tuple[Column, ...]
    per_dataset: bool = True  # False: one table whose columns name their datasets (Table 3)


_LATENT, _MAX = ATTACK_TITLES["latent"], ATTACK_TITLES["max_damage"]
_FIDELITY = Column("none", "fd_classifier", r"FD$_\text{clf}$", "FD_clf", group="Fidelity")
TABLE1 = Layout("table1", "Robustness (MS-SSIM, paper implementation) under attack, mean ± std over trials", (
    Column("latent", "msssim_paper_target_adv_recon", r"MSSSIM$(x_r, \tilde{x}_a)$", "MSSSIM(x_r, x̃_a)", _LATENT),
    Column("latent", "msssim_paper_input_adv", r"MSSSIM$(x_r, x_a)$", "MSSSIM(x_r, x_a)", _LATENT),
    Column("max_damage", "msssim_paper_recon_adv_recon", r"MSSSIM$(\tilde{x}_r, \tilde{x}_a)$", "MSSSIM(x̃_r, x̃_a)", _MAX),
    Column("max_damage", "msssim_paper_input_adv", r"MSSSIM$(x_r, x_a)$", "MSSSIM(x_r, x_a)", _MAX),
    _FIDELITY,
))
TABLE2 = Layout("table2", "Ablation: robustness and fidelity of the GMM-DAE variants", (
    Column("latent", "msssim_paper_target_adv_recon", r"MSSSIM$(x_r, \tilde{x}_a)$", "MSSSIM(x_r, x̃_a)", _LATENT),
    Column("max_damage", "msssim_paper_recon_adv_recon", r"MSSSIM$(\tilde{x}_r, \tilde{x}_a)$", "MSSSIM(x̃_r, x̃_a)", _MAX),
    _FIDELITY,
))


def table3_layout(datasets: list[str], budget: float = 1.0) -> Layout:
    """Table 3: downstream clean and attacked (λ = ``budget``, 1 in the paper) accuracy, datasets side by side."""
    columns = []
    for d in datasets:
        columns += [Column("none", "downstream_clean_accuracy", "clean acc.", "clean acc.", group=d, dataset=d),
                    Column("latent", "downstream_attacked_accuracy", rf"$\lambda = {budget:g}$", f"λ={budget:g} acc.",
                           group=d, budget=budget, dataset=d)]
    return Layout("table3", "Downstream classifier on the latents: clean and attacked accuracy (%)", tuple(columns),
                  per_dataset=False)


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
    """A table ready to render: models × sub-columns of (mean, std), and the paper's numbers where known."""

    layout: Layout
    title: str
    subcolumns: list[tuple[Column, float | None]]
    models: list[str]
    values: dict[tuple[str, int], tuple[float, float, int]]  # mean, std, number of trials
    higher: dict[int, bool]
    paper: dict[tuple[str, int], float] = field(default_factory=dict)

    def best(self, index: int) -> str | None:
        """The model with the best mean in sub-column ``index`` (None if the column is empty)."""
        column = {m: self.values[(m, index)][0] for m in self.models if (m, index) in self.values}
        if not column:
            return None
        pick = max if self.higher.get(index, True) else min
        return pick(column, key=column.get)


def build_table(summary: pd.DataFrame, layout: Layout, optimizer: str, dataset: str | None = None,
                paper: pd.DataFrame | None = None, model_order: list[str] | None = None) -> TableData:
    """Collect one slice of a summary into a table of ``layout`` (attack rows of ``optimizer`` only).

    Rows follow ``model_order`` (the suite's order) where given, else the order of appearance.
    """
    part = summary if dataset is None else summary[summary.dataset == dataset]
    part = part[(part.optimizer == optimizer) | (part.attack == "none")]
    budgets = sorted(part[part.attack != "none"].budget.unique())
    subcolumns: list[tuple[Column, float | None]] = []
    for column in layout.columns:
        if column.per_budget:
            subcolumns += [(column, float(b)) for b in budgets]
        else:
            subcolumns.append((column, column.budget))
    kept: list[tuple[Column, float | None]] = []
    values, higher, paper_values = {}, {}, {}
    for column, budget in subcolumns:
        index = len(kept)
        match = part[(part.attack == column.attack) & (part.metric == column.metric)]
        if column.dataset is not None:
            match = match[match.dataset == column.dataset]
        if budget is not None:
            match = match[np.isclose(match.budget, budget)]
        for r in match.itertuples():
            values[(r.model, index)] = (r.mean, r.std, r.n)
            higher[index] = bool(r.higher_is_better)
        if paper is not None:
            ref = paper[(paper.attack == column.attack) & (paper.metric.isin(_paper_names(column.metric)))]
            ref = ref[ref.dataset == (column.dataset or dataset)]
            if budget is not None:
                ref = ref[np.isclose(ref.budget, budget)]
            paper_values.update({(r.model, index): float(r.value) for r in ref.itertuples()})
        if not match.empty:  # a table shows what was measured; unmeasured columns are left out
            kept.append((column, budget))
        else:
            paper_values = {k: v for k, v in paper_values.items() if k[1] != index}
    subcolumns = kept
    present = list(dict.fromkeys(part.model))
    models = [m for m in model_order or [] if m in present] + [m for m in present if m not in (model_order or [])]
    title = f"{layout.caption}" + (f" — {dataset}" if dataset else "") + f" ({optimizer})"
    return TableData(layout, title, subcolumns, models, values, higher, paper_values)


def _paper_names(metric: str) -> tuple[str, ...]:
    # The paper's fidelity column is Inception FID; ours defaults to the classifier FD. Shown side by side
    # under the same column, labelled as the paper's, never merged into our numbers.
    return (metric, "fid_inception") if metric == "fd_classifier" else (metric,)


def _fmt(value: tuple[float, float, int] | None, digits: int, pm: str = " ± ") -> str:
    """mean ± std over trials; a single measurement (no trials) shows its value alone."""
    if value is None:
        return "–"
    return f"{value[0]:.{digits}f}" if value[2] < 2 else f"{value[0]:.{digits}f}{pm}{value[1]:.{digits}f}"


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def _spans(labels: list[str]) -> list[tuple[str, int]]:
    spans: list[tuple[str, int]] = []
    for label in labels:
        if spans and spans[-1][0] == label:
            spans[-1] = (label, spans[-1][1] + 1)
        else:
            spans.append((label, 1))
    return spans


def _header_cells(table: TableData) -> list[tuple[str, str, str, str]]:
    """Per sub-column: (group, LaTeX metric header, Markdown metric header, budget label), paper copies last."""
    cells = []
    for index, (column, budget) in enumerate(table.subcolumns):
        arrow_up = table.higher.get(index, True)
        arrow = r"$\uparrow$" if arrow_up else r"$\downarrow$"
        latex = f"{column.latex} ({arrow})"
        md = f"{column.markdown} {'↑' if arrow_up else '↓'}"
        label = "" if budget is None or not column.per_budget else f"{budget:g}"
        cells.append((column.group, latex, md, label))
    return cells


_PAPER_HEADERS = {"fd_classifier": (r"FID (Inception)", "FID (Inception)")}  # the paper reports Inception FID


def _paper_header(head: tuple[str, str, str, str], column: Column) -> tuple[str, str, str, str]:
    latex, markdown = _PAPER_HEADERS.get(column.metric, (head[1], head[2]))
    return head[0], latex, markdown, head[3]


def _paper_indices(table: TableData) -> list[int]:
    return [i for i in range(len(table.subcolumns)) if any((m, i) in table.paper for m in table.models)]


def to_latex(table: TableData, digits: int = 2) -> str:
    """Booktabs LaTeX in the paper's layout: groups, metrics with ↑/↓, one column per λ, best in bold."""
    heads = _header_cells(table)
    paper_idx = _paper_indices(table)
    paper_heads = [_paper_header(heads[i], table.subcolumns[i][0]) for i in paper_idx]
    groups = [_latex_escape(h[0]) for h in heads] + ["Paper (reported)"] * len(paper_idx)
    metrics = [h[1] for h in heads] + [h[1] for h in paper_heads]
    budgets = [h[3] for h in heads] + [heads[i][3] for i in paper_idx]
    lines = [r"\begin{tabular}{l" + "c" * len(groups) + "}", r"\toprule"]
    for labels in (groups, metrics):
        cells, rules, col = [""], [], 2
        for label, width in _spans(labels):
            cells.append(rf"\multicolumn{{{width}}}{{c}}{{{label}}}")
            if label:
                rules.append(rf"\cmidrule(lr){{{col}-{col + width - 1}}}")
            col += width
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines += [" & ".join(["Model"] + budgets) + r" \\", r"\midrule"]
    for model in table.models:
        cells = [_latex_escape(model)]
        for index in range(len(heads)):
            value = table.values.get((model, index))
            text = "--" if value is None else _fmt(value, digits, r" $\pm$ ")
            cells.append(rf"\textbf{{{text}}}" if value is not None and table.best(index) == model else text)
        cells += [f"{table.paper[(model, i)]:.{digits}f}" if (model, i) in table.paper else "--" for i in paper_idx]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_markdown(table: TableData, digits: int = 2) -> str:
    """GitHub Markdown version of :func:`to_latex` (one header row: group · metric ↑/↓ · λ)."""
    heads = _header_cells(table)
    paper_idx = _paper_indices(table)

    def label(group: str, md: str, budget: str) -> str:
        return " ".join(part for part in (group, md, f"λ={budget}" if budget else "") if part)

    header = ["model"] + [label(ATTACK_SHORT.get(h[0], h[0]), h[2], h[3]) for h in heads]
    header += [label("paper", *_paper_header(heads[i], table.subcolumns[i][0])[2:]) for i in paper_idx]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in table.models:
        cells = [model]
        for index in range(len(heads)):
            value = table.values.get((model, index))
            text = _fmt(value, digits)
            cells.append(f"**{text}**" if value is not None and table.best(index) == model else text)
        cells += [f"{table.paper[(model, i)]:.{digits}f}" if (model, i) in table.paper else "–" for i in paper_idx]
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


def figure_tradeoff(summary: pd.DataFrame, dataset: str, optimizer: str, path_stem: Path, budget: float = 1.0
                    ) -> list[Path]:
    """Robustness (max-damage MS-SSIM(x̃_r, x̃_a) at λ) against fidelity (``fd_classifier``), one point per model.

    With one model per coupling α this is the α sweep of the paper's Limitations paragraph.
    """
    part = summary[summary.dataset == dataset]
    fidelity = part[part.metric == "fd_classifier"].set_index("model")["mean"]
    robust = part[(part.metric == "msssim_paper_recon_adv_recon") & (part.optimizer == optimizer)
                  & np.isclose(part.budget, budget)].set_index("model")
    models = [m for m in robust.index if m in fidelity.index]
    if not models:
        return []
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for model in models:
        ax.errorbar(fidelity[model], robust.loc[model, "mean"], yerr=robust.loc[model, "std"], fmt="o", capsize=3)
        ax.annotate(model, (fidelity[model], robust.loc[model, "mean"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("fd_classifier (lower = better fidelity)")
    ax.set_ylabel(f"max-damage MSSSIM(x̃_r, x̃_a), λ={budget:g}")
    ax.set_title(f"Robustness vs fidelity ({dataset}, {optimizer})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path_stem)


LAYOUTS = {"table1": TABLE1, "table2": TABLE2, "table3": None}  # table3's columns depend on the datasets


def _suite_meta(run_dir: Path) -> dict:
    path = run_dir / "suite.json"
    return json.loads(path.read_text()).get("suite", {}) if path.exists() else {}


def load_paper_results(name: str | None) -> pd.DataFrame | None:
    """The reported numbers shipped in ``aebench/paper/<name>.csv`` (or a CSV path), or None."""
    if not name:
        return None
    path = Path(name) if str(name).endswith(".csv") else Path(__file__).parent / "paper" / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"Paper results {name!r} not found at {path}.")
    return pd.read_csv(path)


def _write_table(table: TableData, stem: Path) -> list[Path]:
    stem.with_suffix(".tex").write_text(to_latex(table))
    stem.with_suffix(".md").write_text(f"**{table.title}**\n\n" + to_markdown(table))
    return [stem.with_suffix(".tex"), stem.with_suffix(".md")]


def render_report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the suite's tables (LaTeX + Markdown) and figures into ``out_dir`` (default ``RUN_DIR/report``).

    The tables to draw and the paper's numbers to show beside ours come from the run's ``suite.json``.

    Raises:
        FileNotFoundError: If the folder holds no result rows.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "report"
    rows = read_rows(run_dir)
    if rows.empty:
        raise FileNotFoundError(f"{run_dir} holds no result rows yet; run `aebench run SUITE` first.")
    meta = _suite_meta(run_dir)
    current = set((meta.get("cells") or {}).values())
    if current:  # cells of models or datasets no longer in the suite stay on disk but out of the tables
        rows = rows[rows.config_hash.isin(current)]
    paper = load_paper_results(meta.get("paper_results"))
    summary = summarise(rows)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False)
    written = [out / "summary.csv"]
    datasets = list(dict.fromkeys(summary.dataset))
    optimizers = [o for o in dict.fromkeys(summary.optimizer) if o != "none"]
    order = [m["label"] for m in meta.get("models", [])]
    budget = float((meta.get("downstream") or {}).get("budget", 1.0))
    for name in meta.get("tables") or ["table1"]:
        for optimizer in optimizers:
            reported = None if optimizer == "noise" else paper  # the paper's numbers are for real attacks
            if name == "table3":
                table = build_table(summary, table3_layout(datasets, budget), optimizer, None, reported, order)
                written += _write_table(table, out / f"table3_{optimizer}")
                continue
            for dataset in datasets:
                table = build_table(summary, LAYOUTS[name], optimizer, dataset, reported, order)
                written += _write_table(table, out / f"{name}_{dataset}_{optimizer}")
    for dataset in datasets:
        for optimizer in optimizers:
            written += figure_attack_loss(summary, dataset, optimizer, out / f"figure2_{dataset}_{optimizer}")
            if optimizer != "noise":
                written += figure_examples(run_dir, dataset, optimizer, out / f"figure3_{dataset}_{optimizer}")
                written += figure_tradeoff(summary, dataset, optimizer, out / f"tradeoff_{dataset}_{optimizer}")
    return written
