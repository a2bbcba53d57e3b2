"""User networks for the torch tests: what ``model.factory=tests.torch_nets:<name>`` builds."""

from __future__ import annotations

import torch
from torch import nn


class Branchy(nn.Module):
    """A network that is not an ``nn.Sequential`` (a skip connection): its units are ablated
    by the batched hooked forward."""

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * height * width, 16)
        self.hidden = nn.Tanh()
        self.out = nn.Linear(16 + channels * height * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.fc(self.act(self.conv(x)).flatten(1)))
        return self.out(torch.cat([h, x.flatten(1)], dim=1))


def branchy(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    return Branchy(input_shape, n_classes)


def sequential_tanh(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """A chain with tanh units at linear sites (``zero`` keeps them at 0, ``act(0)``)."""
    channels, height, width = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 12), nn.Tanh(), nn.Linear(12, n_classes))


def lenet_like(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """LeNet-5's shape for 8x8 images: two convolution + ReLU + max-pool blocks, then two
    hidden linear layers (sites ``'1'``, ``'4'``, ``'8'``, ``'10'``: the ReLUs)."""
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * (height // 4) * (width // 4), 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(),
        nn.Linear(24, n_classes),
    )
