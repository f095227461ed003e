"""The models a conf may name with ``model: {module: components.nn.models, class, params}``.

Each takes flat rows of ``in_features`` floats (the table's features, in header order);
``in_features`` may be left out: HomoNN fills it with the number of features.
``output`` picks the last activation: ``sigmoid`` (with BCELoss), ``softmax`` (class
probabilities), ``log_softmax`` (with NLLLoss) or ``none`` (logits or a value).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

Output = Literal["sigmoid", "softmax", "log_softmax", "none"]


def _head(output: Output) -> list[nn.Module]:
    heads: dict[str, list[nn.Module]] = {"sigmoid": [nn.Sigmoid()], "softmax": [nn.Softmax(dim=1)],
                                         "log_softmax": [nn.LogSoftmax(dim=1)], "none": []}
    if output not in heads:
        raise ValueError(f"output must be one of {sorted(heads)}, got {output!r}")
    return heads[output]


class MLP(nn.Module):
    """Fully connected layers with one activation between them."""

    def __init__(self, in_features: int, out_features: int = 1, hidden: Sequence[int] = (32,),
                 activation: str = "ReLU", dropout: float = 0.0, output: Output = "sigmoid"):
        super().__init__()
        known = ("ReLU", "Tanh", "GELU", "SiLU", "LeakyReLU", "ELU", "Sigmoid")
        if activation not in known:
            raise ValueError(f"activation must be one of {', '.join(known)}, got {activation!r}")
        act = getattr(nn, activation)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), act()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers, *_head(output))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LogisticHead(nn.Module):
    """One linear layer and a sigmoid (one output) or softmax (several): logistic regression."""

    def __init__(self, in_features: int, out_features: int = 1):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.out = nn.Sigmoid() if out_features == 1 else nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.linear(x))


class CNN(nn.Module):
    """A small convolutional network for rows that are images: each row is reshaped to
    ``image_shape`` (channels, height, width; ``in_features`` must be their product), then
    two 3x3 convolutions with ReLU and 2x2 max-pooling, and a linear layer."""

    def __init__(self, in_features: int, image_shape: Sequence[int], out_features: int = 1,
                 channels: Sequence[int] = (8, 16), output: Output = "sigmoid"):
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if c * h * w != in_features:
            raise ValueError(f"image_shape {list(image_shape)} holds {c * h * w} values, the rows have {in_features}")
        self.shape = (c, h, w)
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, int(out), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = int(out), h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"image_shape {list(image_shape)} is too small for {len(channels)} poolings")
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c * h * w, out_features), *_head(output))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], *self.shape)))
