"""Any timm model by name (`model.name=timm/convnext_tiny`, or with a weights tag: `timm/resnet50.a1_in1k`).

timm is optional (`pip install -e ".[timm]"`) and imported only when a `timm/` name is asked for.
`timm.create_model` builds the model with `num_classes` outputs, `in_chans` input channels (pretrained RGB
filters adapted by timm) and dropout before its classifier; models of a fixed input size (ViTs, ...) are
built for `data.image_size`. With `model.pretrained`, the weights come from the Hugging Face hub
(`timm/<name>.<tag>`), downloaded once into its cache ($HF_HUB_CACHE, else $HF_HOME/hub).
"""

import difflib
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError
from .layers import init_weights

PREFIX = "timm/"


def import_timm(name: str):
    """The timm package; without it, a one-line error that names the model and the install command."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f'model.name={name!r} needs the optional timm package: pip install -e ".[timm]"') from None
    return timm


def timm_names() -> list[str]:
    """`timm/<name>` for every timm architecture and every tagged pretrained weights (`timm/resnet18.a1_in1k`)."""
    import timm  # an ImportError without it: build_model says how to install it

    return [PREFIX + name for name in [*timm.list_models(), *timm.list_models(pretrained=True)]]


def pretrained_cfg(name: str):
    """timm's pretrained config of `name` (the weights' hub repo, mean, std, input size); an error if none."""
    timm = import_timm(name)
    config = timm.models.get_pretrained_cfg(name.removeprefix(PREFIX)) if name in timm_names() else None
    if config is None or not (config.hf_hub_id or config.url):
        tagged = [PREFIX + n for n in timm.list_models(pretrained=True)]  # resnet18.a1_in1k, ...
        close = difflib.get_close_matches(name, [*dict.fromkeys(n.partition(".")[0] for n in tagged), *tagged])
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"model.pretrained=true: {name!r} is not a timm model with pretrained weights; {hint}"
            "timm.list_models(pretrained=True) lists them; or set model.pretrained=false"
        )
    return config


def timm_preprocessing(name: str) -> tuple[list[float], list[float], int]:
    """(mean, std, image size) the pretrained weights of `name` expect (their input_size)."""
    config = pretrained_cfg(name)
    return list(config.mean), list(config.std), config.input_size[-1]


def download_error(name: str, config, err: OSError) -> ConfigError:
    """Where the weights would come from and go, and how to put them there without network."""
    reason = getattr(err, "reason", None) or type(err).__name__
    if config.hf_hub_id:
        from huggingface_hub import constants

        repo = config.hf_hub_id
        file = config.hf_hub_filename or "model.safetensors"
        cache = constants.HF_HUB_CACHE
        where = (
            f"{repo} ({file}) is not in the Hugging Face cache {cache} ($HF_HUB_CACHE, else $HF_HOME/hub). Without "
            f"network, run `hf download {repo} {file} --cache-dir DIR` on a machine with network and copy "
            f"DIR/models--{repo.replace('/', '--')} into {cache} (HF_HUB_OFFLINE=1 skips the download retries)"
        )
    else:
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(config.url).name
        where = f"without network, fetch {config.url} elsewhere and put it at {file} (TORCH_HOME sets the folder)"
    return ConfigError(
        f"model.pretrained=true: cannot download the {name} weights ({reason}): {where}; or give a local "
        "state dict with model.weights=PATH, or set model.pretrained=false."
    )


def build_timm(name: str, m, info: dict) -> nn.Module:
    timm = import_timm(name)
    arch = name.removeprefix(PREFIX)
    config = pretrained_cfg(name) if m.pretrained else timm.models.get_pretrained_cfg(arch)
    # ViTs and other models of a fixed input size: built for this size (pretrained position embeddings resampled)
    size = {"img_size": info["image_size"]} if getattr(config, "fixed_input_size", False) else {}
    try:
        model = timm.create_model(
            arch,
            pretrained=m.pretrained,
            num_classes=info["num_outputs"],
            in_chans=info["in_channels"],
            drop_rate=m.dropout,
            **size,
        )
    except OSError as err:  # not in the cache, and no network
        raise download_error(name, config, err) from None
    if not m.pretrained and m.init != "default":  # `default` keeps timm's own init
        model.apply(partial(init_weights, scheme=m.init))
    return model
