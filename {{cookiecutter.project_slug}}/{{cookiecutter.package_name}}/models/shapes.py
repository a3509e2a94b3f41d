"""Conv and pool output sizes: size a classifier head from the input size, without a dummy forward pass."""

import math

import torch.nn as nn


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Spatial output size of a conv/pool, per dimension (ints or (H, W) pairs):

    out = floor((in + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1)

    With dilation=1 this is the familiar floor((in + 2p - k) / s + 1). padding=(1, 2) pads
    H by 1 and W by 2 (with zeros), as in nn.Conv2d.
    """
    out = []
    dims = zip(_pair(size), _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation), strict=True)
    for n, k, s, p, d in dims:
        if not ceil_mode:
            out.append(math.floor((n + 2 * p - d * (k - 1) - 1) / s + 1))
            continue
        size_out = math.ceil((n + 2 * p - d * (k - 1) - 1) / s + 1)
        # Pools with ceil_mode: the last window must start inside the input or the left padding.
        if (size_out - 1) * s >= n + p:
            size_out -= 1
        out.append(size_out)
    return out[0] if isinstance(size, int) else tuple(out)


def feature_map_size(module: nn.Module, size) -> tuple[int, int]:
    """(H, W) after the Conv2d/MaxPool2d/AvgPool2d layers of `module`, in order.

    Other layers (BatchNorm, ReLU, ...) are assumed to keep the size. Used to size a
    classifier head from the input size without a dummy forward pass.
    """
    size = _pair(size)
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            padding = layer.padding
            if padding == "same":
                continue
            if padding == "valid":
                padding = 0
            size = conv_output_size(size, layer.kernel_size, layer.stride, padding, layer.dilation)
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            stride = layer.stride if layer.stride is not None else layer.kernel_size
            dilation = getattr(layer, "dilation", 1)  # AvgPool2d has none
            size = conv_output_size(size, layer.kernel_size, stride, layer.padding, dilation, layer.ceil_mode)
        elif isinstance(layer, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            size = tuple(o if o is not None else n for o, n in zip(_pair(layer.output_size), size, strict=True))
    return size
