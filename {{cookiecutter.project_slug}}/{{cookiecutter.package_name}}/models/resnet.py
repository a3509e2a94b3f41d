from functools import partial

import torch
import torch.nn as nn
from torchvision.models import resnet18

from .layers import init_weights


class ResNet18(nn.Module):
    """torchvision's ResNet-18, built without downloading weights (`weights=None`)."""

    def __init__(self, num_classes, in_channels=3, dropout=0.0, init="default"):
        super().__init__()
        self.net = resnet18(weights=None, num_classes=num_classes)
        if in_channels != 3:  # e.g. grayscale: a first conv that takes that many channels
            self.net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net.fc = nn.Sequential(nn.Dropout(dropout), self.net.fc)
        # `default` keeps torchvision's ResNet init (Kaiming-normal convs, BN at 1/0).
        if init != "default":
            self.apply(partial(init_weights, scheme=init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
