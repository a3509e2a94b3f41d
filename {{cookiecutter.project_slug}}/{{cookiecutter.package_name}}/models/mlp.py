from collections import OrderedDict
from functools import partial

import torch
import torch.nn as nn

from .layers import init_weights


class MLP(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout blocks, then a linear head.

    Inputs are `num_features` columns; the last `len(embeddings)` of them hold level codes, one per
    `embeddings` entry ((levels, dim): a learned embedding of a categorical column with many levels).
    Every layer is created here, never in `forward`: a layer made in `forward` would get
    fresh random weights on every call and never be trained or saved.
    """

    def __init__(self, num_features, num_outputs, hidden_sizes=(64, 64), dropout=0.1, init="default", embeddings=()):
        super().__init__()
        self.num_numbers = num_features - len(embeddings)
        self.embeddings = nn.ModuleList(nn.Embedding(levels, dim) for levels, dim in embeddings)
        layers = OrderedDict()
        size_in = self.num_numbers + sum(dim for _, dim in embeddings)
        for i, size_out in enumerate(hidden_sizes, start=1):
            layers[f"layer{i}"] = nn.Sequential(
                OrderedDict(
                    linear=nn.Linear(size_in, size_out),
                    bn=nn.BatchNorm1d(size_out),
                    relu=nn.ReLU(inplace=True),
                    dropout=nn.Dropout(dropout),
                )
            )
            size_in = size_out
        self.features = nn.Sequential(layers)
        self.head = nn.Linear(size_in, num_outputs)
        # Init last, once every layer exists.
        self.apply(partial(init_weights, scheme=init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Parameter-free ops only here (the embeddings were made in __init__).
        if self.embeddings:
            codes = x[:, self.num_numbers :].long()
            looked_up = [embedding(codes[:, i]) for i, embedding in enumerate(self.embeddings)]
            x = torch.cat([x[:, : self.num_numbers], *looked_up], dim=1)
        return self.head(self.features(x))
