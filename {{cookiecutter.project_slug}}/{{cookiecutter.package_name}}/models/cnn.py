from collections import OrderedDict
from functools import partial

import torch
import torch.nn as nn

from .layers import init_weights
from .shapes import feature_map_size


class SimpleCNN(nn.Module):
    """Conv blocks (conv3x3 -> BN -> ReLU -> 2x2 max-pool) and a linear classifier.

    Every layer is created here, never in `forward`: a layer made in `forward` would get
    fresh random weights on every call and never be trained or saved.
    """

    def __init__(self, num_classes, in_channels=3, image_size=64, channels=(16, 32, 64), dropout=0.1, init="default"):
        super().__init__()
        blocks = OrderedDict()
        c_in = in_channels
        for i, c_out in enumerate(channels, start=1):
            blocks[f"block{i}"] = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),  # BN has the bias
                    bn=nn.BatchNorm2d(c_out),
                    relu=nn.ReLU(inplace=True),
                    pool=nn.MaxPool2d(2),
                )
            )
            c_in = c_out
        self.features = nn.Sequential(blocks)
        # Size the head from the input size (conv arithmetic), not from a dummy forward pass.
        height, width = feature_map_size(self.features, image_size)
        if height < 1 or width < 1:
            raise ValueError(
                f"data.image_size={image_size} is too small for {len(channels)} conv blocks "
                f"(each halves the size); use at least {2 ** len(channels)}"
            )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                dropout=nn.Dropout(dropout),
                fc=nn.Linear(c_in * height * width, num_classes),
            )
        )
        # Init last, once every layer exists.
        self.apply(partial(init_weights, scheme=init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Parameter-free ops only here.
        return self.classifier(self.features(x))
