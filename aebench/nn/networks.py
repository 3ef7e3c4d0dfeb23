"""Encoder trunks and decoders shared by every model, as in the authors' code (Saseendran et al. 2022).

1×32×32 images (MNIST, Fashion-MNIST): the fully connected 1024-200-200-200-200 net.
3×32×32 (SVHN): 4 stride-2 convs (Conv → BN → ReLU) and 4 transposed convs.
3×64×64 (CelebA): the same channel progression with Conv → ReLU → BN blocks.
Every model of a table uses the same trunk, so capacities match (DESIGN.md, "Networks").
"""

from __future__ import annotations

import math

from torch import Tensor, nn

FC_WIDTH = 200
FC_DEPTH = 4
CONV_CHANNELS = (128, 256, 512, 1024)


def _fc_trunk(in_features: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(FC_DEPTH):
        layers += [nn.Linear(width, FC_WIDTH), nn.ReLU()]
        width = FC_WIDTH
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, bn_after_relu: bool, transpose: bool = False) -> list[nn.Module]:
    conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    conv = conv_cls(c_in, c_out, 4, stride=2, padding=1)
    bn, relu = nn.BatchNorm2d(c_out), nn.ReLU()
    # The authors' CelebA net puts BN after the ReLU; their SVHN net before it (official-code-spec §2.4).
    return [conv, relu, bn] if bn_after_relu else [conv, bn, relu]


def _network_kind(image_shape: tuple[int, int, int]) -> str:
    c, h, w = image_shape
    if (h, w) == (32, 32) and c == 1:
        return "fc"
    if (c, h, w) == (3, 32, 32):
        return "svhn"
    if (c, h, w) == (3, 64, 64):
        return "celeba"
    raise ValueError(
        f"No network for images of shape {tuple(image_shape)}: aebench ships the fully connected net for "
        "1x32x32, and the conv nets for 3x32x32 (SVHN) and 3x64x64 (CelebA). Resize your data to one of these."
    )


def build_encoder_trunk(image_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    """The encoder without its output head.

    Returns:
        The trunk (input (B, C, H, W) → features (B, F)) and the feature size F.
    """
    kind = _network_kind(image_shape)
    if kind == "fc":
        return _fc_trunk(math.prod(image_shape)), FC_WIDTH
    layers: list[nn.Module] = []
    c_in = image_shape[0]
    for c_out in CONV_CHANNELS:
        layers += _conv_block(c_in, c_out, bn_after_relu=kind == "celeba")
        c_in = c_out
    layers.append(nn.Flatten())
    side = image_shape[1] // 2 ** len(CONV_CHANNELS)
    return nn.Sequential(*layers), CONV_CHANNELS[-1] * side * side


class _Unflatten(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


def build_decoder(image_shape: tuple[int, int, int], latent_dim: int) -> nn.Module:
    """The decoder f: (B, D) → (B, C, H, W) in [0, 1] (sigmoid output)."""
    kind = _network_kind(image_shape)
    if kind == "fc":
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(FC_DEPTH):
            layers += [nn.Linear(width, FC_WIDTH), nn.ReLU()]
            width = FC_WIDTH
        layers += [nn.Linear(FC_WIDTH, math.prod(image_shape)), nn.Sigmoid(), _Unflatten(tuple(image_shape))]
        return nn.Sequential(*layers)
    side = image_shape[1] // 2 ** len(CONV_CHANNELS)
    top = CONV_CHANNELS[-1]
    layers = [nn.Linear(latent_dim, top * side * side), nn.ReLU(), _Unflatten((top, side, side))]
    channels = list(reversed(CONV_CHANNELS))
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        layers += _conv_block(c_in, c_out, bn_after_relu=kind == "celeba", transpose=True)
    layers += [nn.ConvTranspose2d(channels[-1], image_shape[0], 4, stride=2, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)
