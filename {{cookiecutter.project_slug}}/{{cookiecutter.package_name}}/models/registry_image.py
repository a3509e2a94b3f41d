"""MODELS: `model.name` -> a builder taking (cfg.model, data_info). Add your own model here."""

from .cnn import SimpleCNN
from .resnet import ResNet18

MODELS = {
    "simple_cnn": lambda m, info: SimpleCNN(
        info["num_classes"], info["in_channels"], info["image_size"], m.channels, m.dropout, m.init
    ),
    "resnet18": lambda m, info: ResNet18(info["num_classes"], info["in_channels"], m.dropout, m.init),
}
