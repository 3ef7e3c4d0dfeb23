"""Time per training step of every registered model, relative to ``vae`` on the same trunk and batch.

Saseendran et al. (NeurIPS 2022, "Results") claim that "the computation time for a single iteration of
SEs is two times more when compared to our method"; this script measures that ratio (smooth_encoder /
robust_gmm_dae) together with every model's cost relative to a VAE step (DESIGN.md, "Speed and memory").

A step is ``loss(x)`` + ``backward`` + ``Adam.step`` on one batch of 1x32x32 images (the FC trunk), with
each model's default constructor arguments plus the dataset-derived ones the trainer would pass. Models
are measured side by side: after a warm-up, every round times one step of each model in turn, so a
machine-wide slowdown hits all models alike; the table shows the median per model.

Usage:
    python benchmarks/train_step.py [--batch-size 100] [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable

import torch

from aebench.models import create_model, list_models
from aebench.models.base import MODELS, AutoEncoder

IMAGE_SHAPE = (1, 32, 32)
# What the trainer offers for MNIST-like data (DESIGN.md: D = K = 10, 60,000 training images).
DATASET_ARGS = {"image_shape": IMAGE_SHAPE, "latent_dim": 10, "num_components": 10, "dataset_size": 60_000}
RATIOS = (("robust_gmm_dae", "gmm_dae"), ("smooth_encoder", "robust_gmm_dae"))


def build(name: str, batch_size: int, device: torch.device) -> AutoEncoder:
    """The model ``name`` with default arguments plus the dataset-derived ones its constructor accepts."""
    offered = {**DATASET_ARGS, "batch_size": batch_size}
    accepted = inspect.signature(MODELS[name]).parameters
    return create_model(name, **{k: v for k, v in offered.items() if k in accepted}).to(device).train()


def make_step(model: AutoEncoder, x: torch.Tensor) -> Callable[[], None]:
    """One optimisation step of ``model`` on ``x`` (the trainer's inner loop)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model.loss(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(names: list[str], batch_size: int, repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median seconds per training step of each model, interleaved in rounds."""
    x = torch.rand(batch_size, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(0)).to(device)
    torch.manual_seed(0)
    steps = {name: make_step(build(name, batch_size, device), x) for name in names}
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(medians: dict[str, float], reference: str = "vae") -> str:
    """A Markdown table of ms/step and the ratio to ``reference``, plus the paper's ratios."""
    base = medians[reference]
    lines = ["| model | ms / step | × vae |", "| --- | ---: | ---: |"]
    for name, seconds in sorted(medians.items(), key=lambda item: item[1]):
        lines.append(f"| {name} | {1000 * seconds:.1f} | {seconds / base:.2f} |")
    lines.append("")
    for name, other in RATIOS:
        if name in medians and other in medians:
            lines.append(f"{name} / {other}: {medians[name] / medians[other]:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure every registered model and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=100, help="images per step (default 100, the DAE recipes')")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds over all models (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first (default 3)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--models", nargs="*", default=None, help="subset of registered models (default all)")
    args = parser.parse_args(argv)
    if args.batch_size < 2 or args.repeats < 1:
        parser.error("--batch-size must be ≥ 2 (β-TCVAE's estimator) and --repeats ≥ 1.")
    names = args.models or list_models()
    if "vae" not in names:
        names = ["vae", *names]
    device = torch.device(args.device)
    medians = measure(names, args.batch_size, args.repeats, args.warmup, device)
    print(f"Training step, 1x32x32 FC trunk, batch {args.batch_size}, {args.repeats} rounds, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(report(medians))


if __name__ == "__main__":
    main()
