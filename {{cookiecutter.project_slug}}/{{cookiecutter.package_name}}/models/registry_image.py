"""MODELS: `model.name` -> a builder taking (cfg.model, data_info). Add your own model here; any other name of a
torchvision classification model (resnet50, convnext_tiny, ...) is built by torchvision_models.py."""

from .cnn import SimpleCNN
from .torchvision_models import build_torchvision, torchvision_names

MODELS = {
    "simple_cnn": lambda m, info: SimpleCNN(
        info["num_classes"], info["in_channels"], info["image_size"], m.channels, m.dropout, m.init
    ),
}

# Libraries of models by name: (their names, a builder taking (name, cfg.model, data_info)).
LIBRARIES = [(torchvision_names, build_torchvision)]
