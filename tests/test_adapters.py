"""Import adapters against checkpoints written by the tests in each foreign layout (no download, no pythae).

The references are independent: the authors' and pythae's networks are re-created here from their module layouts
(the same attribute names, so their state dicts have the same keys as the original code's), and the converted
aebench model must compute exactly what those networks compute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from aebench.adapters import ForeignCheckpointError, import_checkpoint
from aebench.checkpoint import read_metadata
from aebench.cli import app
from aebench.results import read_rows
from aebench.runner import run_suite
from aebench.suite import load_suite

DATASET = "fashion_mnist_mini"


class AuthorsEncoderFC(nn.Module):
    """The layout of Robust_GMM_DAE's MNISTEncoderFC: encoder (4 × Linear + ReLU), fc1 and an unused fc2."""

    def __init__(self, nz: int = 10) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(1024, 200), nn.ReLU(True), nn.Linear(200, 200), nn.ReLU(True),
                                     nn.Linear(200, 200), nn.ReLU(True), nn.Linear(200, 200), nn.ReLU(True))
        self.fc1 = nn.Linear(200, nz)
        self.fc2 = nn.Linear(200, nz)

    def forward(self, x):
        return self.fc1(self.encoder(x.view(x.shape[0], -1)))


class AuthorsDecoderFC(nn.Module):
    """The layout of MNISTDecoderFC: decoder_conv (4 × Linear + ReLU), then fc1 = Linear + Sigmoid."""

    def __init__(self, nz: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(200, 1024), nn.Sigmoid())
        self.decoder_conv = nn.Sequential(nn.Linear(nz, 200), nn.ReLU(True), nn.Linear(200, 200), nn.ReLU(True),
                                          nn.Linear(200, 200), nn.ReLU(True), nn.Linear(200, 200), nn.ReLU(True))

    def forward(self, z):
        return self.fc1(self.decoder_conv(z)).view(z.shape[0], 1, 32, 32)


class AuthorsVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder, self.decoder = AuthorsEncoderFC(), AuthorsDecoderFC()


class PythaeDefaultVAE(nn.Module):
    """pythae's default MLP VAE: Encoder_VAE_MLP and Decoder_AE_MLP, under their attribute names."""

    def __init__(self, latent_dim: int = 6) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([nn.Sequential(nn.Linear(1024, 512), nn.ReLU())])
        self.encoder.embedding = nn.Linear(512, latent_dim)
        self.encoder.log_var = nn.Linear(512, latent_dim)
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList([nn.Sequential(nn.Linear(latent_dim, 512), nn.ReLU()),
                                             nn.Sequential(nn.Linear(512, 1024), nn.Sigmoid())])

    def embed(self, x):
        return self.encoder.embedding(self.encoder.layers[0](x.reshape(x.shape[0], -1)))

    def reconstruct(self, z):
        return self.decoder.layers[1](self.decoder.layers[0](z)).reshape(z.shape[0], 1, 32, 32)


@pytest.fixture
def authors_file(tmp_path) -> tuple[Path, AuthorsVAE]:
    torch.manual_seed(3)
    net = AuthorsVAE()
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # as nn.DataParallel saves it
    path = tmp_path / "vae_epoch_final_100.pth"
    torch.save(state, path)
    return path, net


@pytest.fixture
def pythae_folder(tmp_path) -> tuple[Path, PythaeDefaultVAE]:
    torch.manual_seed(4)
    net = PythaeDefaultVAE()
    folder = tmp_path / "pythae_model"
    folder.mkdir()
    (folder / "model_config.json").write_text(json.dumps({
        "name": "VAEConfig", "input_dim": [1, 32, 32], "latent_dim": 6, "reconstruction_loss": "mse",
        "uses_default_encoder": True, "uses_default_decoder": True}))
    torch.save({"model_state_dict": net.state_dict()}, folder / "model.pt")
    return folder, net


def _images() -> torch.Tensor:
    from aebench.data import load_dataset

    return load_dataset(DATASET, "test").batch(slice(0, 16))


def test_an_authors_checkpoint_computes_exactly_what_the_authors_network_computes(authors_file):
    path, net = authors_file
    imported = import_checkpoint("authors", path, model="robust_gmm_dae", dataset=DATASET)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(imported.model.encode(x), net.encoder(x), rtol=0, atol=0)
        z = net.encoder(x)
        torch.testing.assert_close(imported.model.decode(z), net.decoder(z), rtol=0, atol=0)
    assert imported.model.prior.scale == 10.0 and imported.source["format"] == "authors"
    assert len(imported.source["sha256"]) == 64 and imported.source["code"] == "robust_gmm_dae"
    assert float(imported.model.weight_cv) > 0  # the loss weights are estimated, as for a native model


def test_unmapped_keys_and_other_code_bases_are_clear_errors(authors_file, tmp_path):
    path, net = authors_file
    state = torch.load(path, weights_only=True)
    state["module.encoder.extra.weight"] = torch.zeros(3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ForeignCheckpointError, match="module.encoder.extra.weight|encoder.extra.weight"):
        import_checkpoint("authors", bad, model="robust_gmm_dae", dataset=DATASET)
    with pytest.raises(ForeignCheckpointError, match="convolutional net on 1×32×32"):
        import_checkpoint("authors", path, model="gmm_dae", dataset=DATASET, code="gmm_dae")
    pickled = tmp_path / "object.pth"
    torch.save({"net": nn.Linear(2, 2)}, pickled)  # a module object, not a state dict: must not be unpickled
    with pytest.raises(ForeignCheckpointError, match="without unpickling"):
        import_checkpoint("authors", pickled, model="robust_gmm_dae", dataset=DATASET)


def test_a_pythae_folder_becomes_pythae_mlp_with_the_posterior_mean_as_its_code(pythae_folder, tmp_path):
    folder, net = pythae_folder
    imported = import_checkpoint("pythae", folder, model=None, dataset=DATASET)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(imported.model.encode(x), net.embed(x), rtol=0, atol=0)
        z = net.embed(x)
        torch.testing.assert_close(imported.model.decode(z), net.reconstruct(z), rtol=0, atol=0)
    assert imported.model.registry_name == "pythae_mlp" and imported.source["pythae_model"] == "VAE"
    config = json.loads((folder / "model_config.json").read_text())
    config["uses_default_encoder"] = False
    (folder / "model_config.json").write_text(json.dumps(config))
    with pytest.raises(ForeignCheckpointError, match="unpickles code, so aebench does it only when asked"):
        import_checkpoint("pythae", folder, model=None, dataset=DATASET)


def test_pythae_itself_loads_what_the_adapter_reads(pythae_folder):
    pythae = pytest.importorskip("pythae")
    folder, net = pythae_folder
    model = pythae.models.AutoModel.load_from_folder(str(folder))
    imported = import_checkpoint("pythae", folder, model=None, dataset=DATASET)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(imported.model.encode(x), model.encoder(x)["embedding"])


def test_any_code_base_through_its_factory_and_weights(tmp_path):
    from tests.helpers import tiny_foreign_net

    torch.manual_seed(5)
    net = tiny_foreign_net(latent_dim=4)
    weights = tmp_path / "weights.pt"
    torch.save(net.state_dict(), weights)
    imported = import_checkpoint("state_dict", weights, model=None, dataset=DATASET,
                                 factory="tests.helpers:tiny_foreign_net", factory_args={"latent_dim": 4},
                                 encode="embed", decode="generate")
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(imported.model.encode(x), net.embed(x), rtol=0, atol=0)
    assert imported.model.latent_dim == 4 and imported.source["factory"] == "tests.helpers:tiny_foreign_net"
    with pytest.raises(ForeignCheckpointError, match="needs factory"):
        import_checkpoint("state_dict", weights, model=None, dataset=DATASET)


def _suite(tmp_path: Path, name: str, checkpoint, model: str = "robust_gmm_dae") -> object:
    raw = {"name": name, "version": 1, "datasets": [DATASET],
           "models": [{"name": model, "label": "theirs", "checkpoint": checkpoint}],
           "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1], "options": {"steps": 3, "restarts": 1}},
                       {"name": "max_damage", "optimizer": "pgd", "budgets": [1], "options": {"steps": 3}}],
           "noise_baseline": False, "n_images": 4, "n_trials": 2, "device": "cpu",
           "output": str(tmp_path / name), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_suite(path)


def _values(suite) -> pd.DataFrame:
    rows = read_rows(suite.output)
    return rows[["measurement", "metric", "trial", "value"]].sort_values(["measurement", "metric", "trial"]) \
        .reset_index(drop=True)


def test_aebench_import_and_a_suites_foreign_checkpoint_give_the_rows_of_the_native_model(authors_file, tmp_path):
    path, _ = authors_file
    native = tmp_path / "native.safetensors"
    result = CliRunner().invoke(app, ["import", "authors", str(path), "--model", "robust_gmm_dae", "--dataset",
                                      DATASET, "--output", str(native)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = read_metadata(native)
    assert meta["source"]["format"] == "authors" and meta["source"]["path"] == str(path)
    assert len(meta["source"]["sha256"]) == 64
    from_native = _suite(tmp_path, "native", str(native))
    from_foreign = _suite(tmp_path, "foreign", {"format": "authors", "path": str(path)})
    for suite in (from_native, from_foreign):
        assert not run_suite(suite).failed
    pd.testing.assert_frame_equal(_values(from_native), _values(from_foreign))
    rows = read_rows(from_foreign.output)
    assert {r["source"]["format"] for r in rows.settings} == {"authors"}  # every row names its source


def test_a_pythae_folder_in_a_suite(pythae_folder, tmp_path):
    folder, _ = pythae_folder
    suite = _suite(tmp_path, "pythae", {"format": "pythae", "path": str(folder)}, model="pythae_mlp")
    assert not run_suite(suite).failed
    assert set(read_rows(suite.output).model) == {"theirs"}


def test_a_plain_module_through_aebench_benchmark():
    import aebench

    class Mine(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down, self.up = nn.Linear(1024, 5), nn.Linear(5, 1024)

        def encode(self, x):
            return self.down(x.flatten(1))

        def decode(self, z):
            return torch.sigmoid(self.up(z)).view(-1, 1, 32, 32)

    rows = aebench.benchmark(Mine(), DATASET, budgets=[1, 2], n_images=5, n_trials=2, options={"steps": 3})
    attacked = rows[(rows.optimizer == "pgd") & (rows.metric == "attack_loss")]
    assert set(attacked.budget) == {1.0, 2.0} and set(attacked.trial) == {0, 1} and not rows.attrs["failed"]
    assert set(rows.model) == {"model"}
