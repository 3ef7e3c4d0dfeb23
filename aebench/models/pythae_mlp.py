"""The default MLP autoencoder of pythae, so that a pythae model folder can be evaluated under aebench's protocol.

Chadebec, Vincent and Allassonnière, "Pythae: Unifying Generative Autoencoders in Python" (NeurIPS 2022 Datasets and
Benchmarks, https://arxiv.org/abs/2206.08309): when a model is built without custom networks, pythae uses one
hidden layer of 512 units (``Encoder_AE_MLP``/``Encoder_VAE_MLP``, ``Decoder_AE_MLP``). The modules here carry
pythae's attribute names, so its ``model_state_dict`` loads as it is (``aebench.adapters.pythae``). ``encode`` is
the encoder's embedding, i.e. the posterior mean for a VAE (pythae's own ``embed`` samples, which an attack must
not see). Training it here optimises the ELBO with pythae's default MSE reconstruction term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aebench.models.base import MODELS, AutoEncoder

HIDDEN = 512


class _Encoder(nn.Module):
    def __init__(self, inputs: int, latent_dim: int, variational: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(inputs, HIDDEN), nn.ReLU())])
        self.embedding = nn.Linear(HIDDEN, latent_dim)
        if variational:
            self.log_var = nn.Linear(HIDDEN, latent_dim)


class _Decoder(nn.Module):
    def __init__(self, latent_dim: int, outputs: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(latent_dim, HIDDEN), nn.ReLU()),
                                     nn.Sequential(nn.Linear(HIDDEN, outputs), nn.Sigmoid())])


@MODELS.register("pythae_mlp")
class PythaeMLP(AutoEncoder):
    """pythae's default MLP (V)AE: one 512-unit hidden layer each way.

    Args:
        image_shape: (C, H, W) of pythae's ``input_dim``.
        latent_dim: D.
        variational: A VAE (encoder with a log-variance head) or a plain AE.
    """

    description = "pythae's default MLP (V)AE, for imported pythae model folders"
    paper = "Chadebec et al., Pythae, NeurIPS 2022 (Datasets and Benchmarks)"

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int = 10, variational: bool = True) -> None:
        super().__init__(image_shape, latent_dim)
        pixels = math.prod(self.image_shape)
        self.variational = bool(variational)
        self.encoder = _Encoder(pixels, self.latent_dim, self.variational)
        self.decoder = _Decoder(self.latent_dim, pixels)

    def _hidden(self, x: Tensor) -> Tensor:
        return self.encoder.layers[0](x.reshape(x.shape[0], -1))

    def encode(self, x: Tensor) -> Tensor:
        """The embedding (the posterior mean of a VAE)."""
        return self.encoder.embedding(self._hidden(x))

    def decode(self, z: Tensor) -> Tensor:
        """The reconstruction, reshaped to the image shape."""
        out = self.decoder.layers[1](self.decoder.layers[0](z))
        return out.reshape(z.shape[0], *self.image_shape)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Pythae's VAE loss with its default MSE reconstruction (a sum over pixels), or the AE's MSE."""
        hidden = self._hidden(x)
        mu = self.encoder.embedding(hidden)
        if not self.variational:
            rec = (self.decode(mu) - x).pow(2).flatten(1).sum(1).mean()
            return {"loss": rec, "rec": rec}
        log_var = self.encoder.log_var(hidden)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        rec = 0.5 * (self.decode(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(1)).mean()
        return {"loss": rec + kl, "rec": rec, "kl": kl}

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """N(0, I), as pythae's normal sampler."""
        device = generator.device if generator is not None else self.device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)
