"""CUDA runs of every model family: train a few steps, sample with a CPU generator, attack, run a tiny suite.

Marked ``gpu`` (deselected by default); run with ``python -m pytest -m gpu`` on a machine with CUDA. Random draws
use CPU generators while the model sits on the GPU, which is exactly what must work (DESIGN.md, "same seed, same
numbers" on every device).
"""

from __future__ import annotations

import pytest
import torch
import yaml

from aebench.attacks import run_attack
from aebench.models import list_models
from tests.helpers import build_model

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("name", list_models())
def test_each_model_trains_samples_and_is_attacked_on_cuda(name):
    device = torch.device("cuda")
    model = build_model(name).to(device)
    if not getattr(model, "trainable", True):
        pytest.skip(f"{name} is trained by its own code base")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    for _ in range(3):
        terms = model.loss(x)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        assert torch.isfinite(terms["loss"])
    model.eval()
    with torch.no_grad():
        cpu_generator = torch.Generator(device="cpu").manual_seed(1)
        samples = model.sample(4, cpu_generator)
    assert samples.device.type == "cuda" and samples.shape == (4, 1, 32, 32)
    # The same CPU seed gives the same codes on the CPU model.
    cpu_model = build_model(name)
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    torch.testing.assert_close(model.sample_latent(4, torch.Generator().manual_seed(1)).cpu(),
                               cpu_model.sample_latent(4, torch.Generator().manual_seed(1)).cpu())
    for attack, target in (("latent", x.flip(0)), ("max_damage", None)):
        result = run_attack(model, x, attack=attack, budget=1.0, optimizer="pgd", target=target,
                            generator=torch.Generator().manual_seed(2), steps=3, restarts=1)
        assert result.x_adv.device.type == "cuda"
        assert ((result.x_adv - x).flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()


@needs_cuda
def test_a_tiny_suite_runs_on_cuda(tmp_path):
    from aebench.results import read_rows
    from aebench.runner import run_suite
    from aebench.suite import load_suite

    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump({
        "name": "gpu", "version": 1, "datasets": ["fashion_mnist_mini"],
        "models": ["gmm_dae", "robust_gmm_dae", "vae"], "training": {"epochs": 1, "batch_size": 200},
        "attacks": [{"name": "latent", "optimizer": "lbfgs", "budgets": [1], "options": {"max_iter": 5}},
                    {"name": "max_damage", "optimizer": "pgd", "budgets": [1], "options": {"steps": 3}}],
        "fidelity": {"n_samples": 500}, "downstream": {"budget": 1, "epochs": 2}, "n_images": 5, "n_trials": 2,
        "device": "cuda", "output": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}))
    summary = run_suite(load_suite(path))
    assert not summary.failed, summary.failed
    rows = read_rows(tmp_path / "out")
    assert set(rows.device) == {"cuda"} and rows.value.notna().all()
