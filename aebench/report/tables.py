"""The paper's tables, rendered from a run's rows as LaTeX (booktabs) and Markdown.

Table 1 of Saseendran et al. (NeurIPS 2022): MS-SSIM columns of the latent-space and maximum-damage attacks at each
budget λ, mean ± std over trials, ↑/↓ in the headers, the best value in bold; Table 2 (the ablation) takes a subset
of those columns; Table 3 puts downstream accuracy of several datasets side by side. A measurement the suite asked
for but that failed or has not run yet is printed as ``failed`` or ``missing``, never as a blank or a number.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

FAILED, MISSING = "failed", "missing"

ATTACK_TITLES = {"latent": "Latent space attack", "max_damage": "Maximum damage attack"}
ATTACK_SHORT = {ATTACK_TITLES["latent"]: "latent", ATTACK_TITLES["max_damage"]: "max-damage", "Fidelity": "",
                "Clean": ""}


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
        bold: Mark the best value (off for diagnostics such as the number of active units).
        digits: Decimals shown (None: the table's).
    """

    attack: str
    metric: str
    latex: str
    markdown: str
    group: str = ""
    budget: float | None = None
    dataset: str | None = None
    bold: bool = True
    digits: int | None = None

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
_FIDELITY = Column("none", "fd_classifier", r"FD$_\mathrm{clf}$", "FD_clf", group="Fidelity")
# A model that ignores its input looks robust: its reconstruction error and active latent units give it away.
COLLAPSE_COLUMNS = (Column("none", "test_recon_mse", "MSE", "recon. MSE", group="Clean", bold=False, digits=4),
                    Column("none", "active_units", "AU", "active units", group="Clean", bold=False, digits=0))
"""Reconstruction error and active units: the collapse indicator that every robustness table can carry."""
_CLEAN = (*COLLAPSE_COLUMNS,
          Column("none", "certified_radius", r"cert. $R$ ($r$=5)", "certified R (r=5)", group="Clean", digits=3))
_RECON_ADV = (r"MSSSIM$(\tilde{x}_r, \tilde{x}_a)$", "MSSSIM(x̃_r, x̃_a)")
TABLE1 = Layout("table1", "Robustness (MS-SSIM, paper implementation) under attack, mean ± std over trials", (
    Column("latent", "msssim_paper_target_adv_recon", r"MSSSIM$(x_r, \tilde{x}_a)$", "MSSSIM(x_r, x̃_a)", _LATENT),
    Column("latent", "msssim_paper_input_adv", r"MSSSIM$(x_r, x_a)$", "MSSSIM(x_r, x_a)", _LATENT),
    Column("max_damage", "msssim_paper_recon_adv_recon", *_RECON_ADV, _MAX),
    Column("max_damage", "msssim_paper_input_adv", r"MSSSIM$(x_r, x_a)$", "MSSSIM(x_r, x_a)", _MAX),
    _FIDELITY, *_CLEAN,
))
TABLE2 = Layout("table2", "Ablation: robustness and fidelity of the GMM-DAE variants", (
    Column("latent", "msssim_paper_target_adv_recon", r"MSSSIM$(x_r, \tilde{x}_a)$", "MSSSIM(x_r, x̃_a)", _LATENT),
    Column("max_damage", "msssim_paper_recon_adv_recon", *_RECON_ADV, _MAX),
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
    """A table ready to render: models × sub-columns of (mean, std), and the paper's numbers where known.

    Attributes:
        status: ``failed`` or ``missing`` for a (model, sub-column) the suite asked for but that has no value.
    """

    layout: Layout
    title: str
    subcolumns: list[tuple[Column, float | None]]
    models: list[str]
    values: dict[tuple[str, int], tuple[float, float, int]]  # mean, std, number of trials
    higher: dict[int, bool]
    paper: dict[tuple[str, int], float] = field(default_factory=dict)
    status: dict[tuple[str, int], str] = field(default_factory=dict)

    def best(self, index: int) -> str | None:
        """The model with the best mean in sub-column ``index`` (None if the column is empty)."""
        column = {m: self.values[(m, index)][0] for m in self.models
                  if (m, index) in self.values and math.isfinite(self.values[(m, index)][0])}
        if not column:
            return None
        if not self.subcolumns[index][0].bold:
            return None
        pick = max if self.higher.get(index, True) else min
        return pick(column, key=column.get)


def measurement_of(column: Column, optimizer: str, budget: float | None) -> str:
    """The measurement a table cell's number comes from (see :mod:`aebench.runner.plan` for the names)."""
    if column.metric.startswith("downstream"):
        return "downstream"
    if column.attack == "none":
        return f"fidelity-{column.metric}" if column.metric.startswith(("fd_", "fid_")) else "reconstruction"
    return f"attack-{column.attack}-{optimizer}-{budget:g}"


def build_table(summary: pd.DataFrame, layout: Layout, optimizer: str, dataset: str | None = None,
                paper: pd.DataFrame | None = None, model_order: list[str] | None = None,
                expected: dict[tuple[str, str, str], str] | None = None) -> TableData:
    """Collect one slice of a summary into a table of ``layout`` (attack rows of ``optimizer`` only).

    Args:
        summary: From :func:`summarise`.
        layout: The table's columns.
        optimizer: Attack optimizer whose rows fill the attack columns.
        dataset: Restrict to one dataset (None: the layout's columns name their datasets).
        paper: Reported numbers to show beside ours.
        model_order: Row order (the suite's); models not in it follow in order of appearance.
        expected: ``(dataset, model, measurement) → "failed" | "missing"`` for measurements the suite asked for that
            have no rows; those cells say so, and a column is kept while any model expects it.
    """
    expected = expected or {}
    part = summary if dataset is None else summary[summary.dataset == dataset]
    part = part[(part.optimizer == optimizer) | (part.attack == "none")]
    budgets = sorted(set(part[part.attack != "none"].budget.unique())
                     | {_budget_of(name) for (d, _, name) in expected
                        if (dataset is None or d == dataset) and name.startswith("attack-")
                        and name.split("-", 3)[2] == optimizer})
    subcolumns: list[tuple[Column, float | None]] = []
    for column in layout.columns:
        if column.per_budget:
            subcolumns += [(column, float(b)) for b in budgets]
        else:
            subcolumns.append((column, column.budget))
    present = list(dict.fromkeys(part.model)) + [m for (d, m, _) in expected if dataset is None or d == dataset]
    present = list(dict.fromkeys(present))
    models = [m for m in model_order or [] if m in present] + [m for m in present if m not in (model_order or [])]
    kept: list[tuple[Column, float | None]] = []
    values, higher, paper_values, status = {}, {}, {}, {}
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
        name = measurement_of(column, optimizer, budget)
        where = column.dataset or dataset
        for model in models:
            state = expected.get((where, model, name)) if where is not None else None
            if (model, index) not in values and state is not None:
                status[(model, index)] = state
        if paper is not None:
            ref = paper[(paper.attack == column.attack) & (paper.metric.isin(_paper_names(column.metric)))]
            ref = ref[ref.dataset == where]
            if budget is not None:
                ref = ref[np.isclose(ref.budget, budget)]
            paper_values.update({(r.model, index): float(r.value) for r in ref.itertuples()})
        if not match.empty or any(k[1] == index for k in status):
            kept.append((column, budget))  # a table shows what was measured or asked for
        else:
            paper_values = {k: v for k, v in paper_values.items() if k[1] != index}
    title = f"{layout.caption}" + (f" — {dataset}" if dataset else "") + f" ({optimizer})"
    return TableData(layout, title, kept, models, values, higher, paper_values, status)


def _budget_of(measurement: str) -> float:
    return float(measurement.split("-", 3)[3])  # attack-<attack>-<optimizer>-<budget>; names hold no "-"


def _paper_names(metric: str) -> tuple[str, ...]:
    # The paper's fidelity column is Inception FID; ours defaults to the classifier FD. Shown side by side
    # under the same column, labelled as the paper's, never merged into our numbers.
    return (metric, "fid_inception") if metric == "fd_classifier" else (metric,)


def _fmt(value: tuple[float, float, int] | None, digits: int, pm: str = " ± ") -> str:
    """Mean ± std over trials; a single measurement (no trials) shows its value alone."""
    if value is None:
        return "–"
    if not math.isfinite(value[0]):
        return "invalid"
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
            places = table.subcolumns[index][0].digits
            text = table.status.get((model, index), "--") if value is None else _fmt(
                value, digits if places is None else places, r" $\pm$ ")
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
            places = table.subcolumns[index][0].digits
            text = table.status.get((model, index), "–") if value is None else _fmt(
                value, digits if places is None else places)
            cells.append(f"**{text}**" if value is not None and table.best(index) == model else text)
        cells += [f"{table.paper[(model, i)]:.{digits}f}" if (model, i) in table.paper else "–" for i in paper_idx]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"




def _subset(table: TableData, indices: list[int], title: str, values: dict | None = None,
            bold: bool = True) -> TableData:
    """The table restricted to some sub-columns (renumbered), optionally with other values."""
    remap = {old: new for new, old in enumerate(indices)}
    source = table.values if values is None else values
    subcolumns = [(column if bold else replace(column, bold=False), budget)
                  for column, budget in (table.subcolumns[i] for i in indices)]
    return TableData(table.layout, title, subcolumns, table.models,
                     {(m, remap[i]): v for (m, i), v in source.items() if i in remap},
                     {remap[i]: h for i, h in table.higher.items() if i in remap},
                     {(m, remap[i]): v for (m, i), v in table.paper.items() if i in remap} if values is None else {},
                     {(m, remap[i]): v for (m, i), v in table.status.items() if i in remap})


def split_by_group(table: TableData) -> list[TableData]:
    """One table per column group (the latent attack, maximum damage, fidelity, ...), so wide tables fit a screen."""
    groups: dict[str, list[int]] = {}
    for index, (column, _) in enumerate(table.subcolumns):
        groups.setdefault(column.group, []).append(index)
    if len(groups) < 2:
        return [table]
    return [_subset(table, indices, f"{table.title}: {group or 'other'}") for group, indices in groups.items()]


def paper_delta(table: TableData) -> TableData | None:
    """Ours − the paper's reported value, per cell where both exist (None when the paper has none)."""
    # The paper's fidelity column is Inception FID and ours fd_classifier: different metrics, no difference.
    indices = sorted({i for (_, i) in table.paper if table.subcolumns[i][0].metric != "fd_classifier"})
    deltas = {(m, i): (table.values[(m, i)][0] - table.paper[(m, i)], 0.0, 1)
              for (m, i) in table.paper if (m, i) in table.values and i in indices}
    if not deltas:
        return None
    return _subset(table, indices, f"{table.title}: ours − paper", values=deltas, bold=False)


def paper_orderings(table: TableData) -> list[str]:
    """Per sub-column: whether our order of the models is the paper's (every pair compared)."""
    lines = []
    for index, (column, budget) in enumerate(table.subcolumns):
        models = [m for m in table.models if (m, index) in table.values and (m, index) in table.paper]
        if len(models) < 2 or column.metric == "fd_classifier":
            continue
        flipped = [f"{a} vs {b}" for a, b in itertools.combinations(models, 2)
                   if np.sign(table.values[(a, index)][0] - table.values[(b, index)][0])
                   * np.sign(table.paper[(a, index)] - table.paper[(b, index)]) < 0]
        label = column.markdown + (f" λ={budget:g}" if budget is not None and column.per_budget else "")
        lines.append(f"- {label}: " + ("the paper's order is reproduced" if not flipped else
                                       "not reproduced for " + ", ".join(flipped)))
    return lines
