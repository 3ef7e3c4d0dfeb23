"""The paper's figures, drawn from a run's rows and example images with matplotlib (files only, no window).

Figure 2 of Saseendran et al. (NeurIPS 2022): attack loss against λ per model (mean ± std band). Figure 3: input,
clean reconstruction, adversarial input, adversarial reconstruction and target. And the robustness-fidelity
trade-off of the paper's Limitations paragraph (one point per model, e.g. per coupling α).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from aebench.report.tables import ATTACK_TITLES  # noqa: E402
from aebench.results import CELLS_DIR  # noqa: E402


def figure_attack_loss(summary: pd.DataFrame, dataset: str, optimizer: str, path_stem: Path) -> list[Path]:
    """Figure 2: attack loss against λ per model, one panel per attack, mean ± std band."""
    part = summary[(summary.dataset == dataset) & (summary.optimizer == optimizer) & (summary.metric == "attack_loss")]
    attacks = list(dict.fromkeys(part.attack))
    if not attacks:
        return []
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.4), squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
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


EXAMPLE_INPUTS = 3  # inputs shown side by side in Figure 3


def _example_rows(run_dir: Path, dataset: str, optimizer: str, attack: str) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(row label, images) per model and budget of one attack, budgets ascending."""
    rows = []
    for cell in sorted((run_dir / CELLS_DIR).glob(f"{dataset}__*")):
        model = cell.name.split("__")[1]
        found = []
        for path in cell.glob(f"attack-{attack}-{optimizer}-*.examples.npz"):
            budget = float(path.name.removesuffix(".examples.npz").split("-", 3)[3])
            try:
                with np.load(path) as store:
                    found.append((budget, {name: store[name] for name in store.files}))
            except (OSError, ValueError):
                continue  # a damaged example file only costs its row of the figure
        rows += [(f"{model}\nλ={budget:g}", images) for budget, images in sorted(found, key=lambda item: item[0])]
    return rows


def figure_examples(run_dir: Path, dataset: str, optimizer: str, path_stem: Path) -> list[Path]:
    """Figure 3, one figure per attack: a row per model and budget, several inputs side by side.

    Each input shows x, its clean reconstruction x̃_r, the adversarial input x_a, its reconstruction x̃_a and, for
    the latent attack, the target x_t (maximum damage has no target, so no empty panel).
    """
    written = []
    for attack in ("latent", "max_damage"):
        rows = _example_rows(run_dir, dataset, optimizer, attack)
        if not rows:
            continue
        parts = ["x", "recon", "x_adv", "adv_recon"] + (["target"] if attack == "latent" else [])
        titles = {"x": "x", "recon": "x̃_r", "x_adv": "x_a", "adv_recon": "x̃_a", "target": "x_t"}
        inputs = min(EXAMPLE_INPUTS, min(images["x"].shape[0] for _, images in rows))
        columns = inputs * len(parts)
        fig, axes = plt.subplots(len(rows), columns, figsize=(0.9 * columns, 1.0 * len(rows) + 0.4), squeeze=False)
        for r, (label, images) in enumerate(rows):
            for i in range(inputs):
                for p, part in enumerate(parts):
                    ax = axes[r][i * len(parts) + p]
                    ax.set_xticks([]), ax.set_yticks([])
                    if part in images:
                        image = images[part][i]
                        ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray",
                                  vmin=0, vmax=255)
                    if r == 0:
                        ax.set_title(f"{titles[part]} ({i + 1})" if p == 0 else titles[part], fontsize=7)
            axes[r][0].set_ylabel(label, fontsize=6)
        fig.suptitle(f"{ATTACK_TITLES.get(attack, attack)} ({dataset}, {optimizer})", fontsize=9)
        fig.tight_layout()
        written += _save_figure(fig, path_stem.with_name(f"{path_stem.name}_{attack}"))
    return written


def _save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        # No creation date in the PDF: a rerendered report differs from the committed one only where numbers do.
        fig.savefig(path, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
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
                    textcoords="offset points", annotation_clip=True)
    # Room around the points so that every label stays inside the axes.
    ax.margins(x=0.25, y=0.2)
    ax.set_xlabel("fd_classifier (lower = better fidelity)")
    ax.set_ylabel(f"max-damage MSSSIM(x̃_r, x̃_a), λ={budget:g}")
    ax.set_title(f"Robustness vs fidelity ({dataset}, {optimizer})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path_stem)


