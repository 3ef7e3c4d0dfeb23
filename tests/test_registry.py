from __future__ import annotations

import pytest

from aebench.registry import Registry, UnknownNameError


def test_duplicate_name_is_an_error():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha_one", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha_one", 2)
    assert reg["alpha_one"] == 1


def test_unknown_name_lists_close_matches_and_all_names():
    reg: Registry[int] = Registry("widget")
    for i, name in enumerate(["robust_gmm_dae", "gmm_dae", "vae"]):
        reg.add(name, i)
    with pytest.raises(UnknownNameError) as info:
        reg["robust_gmm_dea"]
    message = str(info.value)
    assert "Did you mean 'robust_gmm_dae'" in message
    assert "Available: gmm_dae, robust_gmm_dae, vae" in message


def test_names_are_lower_snake_and_filterable():
    reg: Registry[int] = Registry("widget")
    with pytest.raises(ValueError, match="lower_snake"):
        reg.add("BadName", 0)
    reg.add("gmm_dae", 0)
    reg.add("robust_gmm_dae", 1)
    reg.add("vae", 2)
    assert reg.names("*gmm*") == ["gmm_dae", "robust_gmm_dae"]


def test_models_registry_has_the_dae_family_and_entry_points(monkeypatch):
    import aebench.models as models_pkg
    from aebench.models.base import AutoEncoder

    class PluginAE(AutoEncoder):
        description = "third-party test model"

        def encode(self, x):  # pragma: no cover - never called
            return x

        decode = loss = sample_latent = encode

    class FakeEntryPoint:
        name = "plugin_ae"
        value = "plugin:PluginAE"

        def load(self):
            return PluginAE

    monkeypatch.setattr(models_pkg, "_plugins_loaded", False)
    models_pkg.MODELS.load_before_first_use(models_pkg.load_plugins)  # as on a fresh import
    monkeypatch.setattr(models_pkg, "entry_points",
                        lambda group: [FakeEntryPoint()] if group == "aebench.models" else [])
    try:
        assert "plugin_ae" in models_pkg.MODELS  # any first use of the registry loads the entry points
        names = models_pkg.list_models()
        assert {"gmm_dae", "augmented_gmm_dae", "robust_gmm_dae", "plugin_ae"} <= set(names)
    finally:
        models_pkg.MODELS._items.pop("plugin_ae", None)


@pytest.mark.parametrize("module", ["aebench", "aebench.models", "aebench.models.base", "aebench.models.vae"])
def test_the_registry_is_complete_whichever_module_it_is_imported_from(module):
    import subprocess
    import sys

    code = f"import {module}; from aebench.models.base import MODELS; print(len(MODELS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "11"  # the paper's nine, pythae's default MLP and the external wrapper
