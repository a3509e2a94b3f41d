"""MODELS: `model.name` -> a builder taking (cfg.model, data_info). Add your own model here; any other name of a
torchvision classification model (resnet50, convnext_tiny, ...) is built by torchvision_models.py, and
`timm/<name>` (timm/convnext_tiny, ...) by timm_models.py when the optional timm package is installed."""

from .cnn import SimpleCNN
from .timm_models import build_timm, timm_names
from .torchvision_models import build_torchvision, torchvision_names

MODELS = {
    "simple_cnn": lambda m, info: SimpleCNN(
        info["num_outputs"], info["in_channels"], info["image_size"], m.channels, m.dropout, m.init
    ),
}

# Libraries of models by name prefix ("": any other name): (their names, a builder taking (name, cfg.model, data_info)).
LIBRARIES = {"timm/": (timm_names, build_timm), "": (torchvision_names, build_torchvision)}
