"""MODELS: `model.name` -> a builder taking (cfg.model, data_info). Add your own model here."""

from .mlp import MLP

MODELS = {
    "mlp": lambda m, info: MLP(
        info["num_features"], info["num_outputs"], m.hidden_sizes, m.dropout, m.init, info["embeddings"]
    ),
}

# Libraries of models by name prefix: (their names, a builder taking (name, cfg.model, data_info)); none for tables.
LIBRARIES = {}
