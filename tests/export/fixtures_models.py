"""Tiny models the export tests load by import path (`<this module>:TinyMLP`)."""

from __future__ import annotations

import torch
from torch import nn


class TinyMLP(nn.Module):
    """A 10-class classifier over 16 features."""

    def __init__(self, in_features: int = 16, hidden: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class TinyCNN(nn.Module):
    """A 3x32x32 image classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(torch.relu(self.conv(image))), 1))


class TwoInputs(nn.Module):
    """Two inputs of different dtypes and two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4)

    def forward(self, tokens: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.embed(tokens).mean(dim=1)
        return self.proj(pooled) * scale, pooled


def make_mlp(hidden: int = 8) -> nn.Module:
    """A factory function rather than a class."""
    return TinyMLP(hidden=hidden)


@torch.library.custom_op("modeldeploy_test::opaque", mutates_args=())
def opaque(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@opaque.register_fake
def _opaque_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class CustomOp(nn.Module):
    """Uses an operator that has no ONNX translation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return opaque(x)


class ExportDiffers(nn.Module):
    """Computes something else while being exported: ORT must disagree with torch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting():
            return x * 3.0
        return x


class FixedBatch(nn.Module):
    """Hard-codes a batch of 2, so it cannot have a dynamic batch dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(2, 8))


not_a_module = "just a string"
