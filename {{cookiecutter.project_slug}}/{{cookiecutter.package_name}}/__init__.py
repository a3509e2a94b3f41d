"""Training package: config, data, models, trainer and checkpoint utilities."""
