"""Model helpers: weight init, finding and freezing layers by name, gradients."""

import difflib
import fnmatch
from functools import partial

import torch
import torch.nn as nn

# model.init -> the weight init of every Conv and Linear layer (biases zeroed); default: PyTorch's own.
INIT_SCHEMES = {
    "default": None,
    "kaiming_normal": partial(nn.init.kaiming_normal_, nonlinearity="relu"),
    "kaiming_uniform": partial(nn.init.kaiming_uniform_, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
}


def init_weights(module: nn.Module, scheme: str) -> None:
    """Use with `model.apply(partial(init_weights, scheme=...))` at the end of `__init__`.

    `default` keeps PyTorch's own init: Kaiming-uniform (a=sqrt(5)) weights and
    uniform(+-1/sqrt(fan_in)) biases for Conv and Linear layers.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"config key 'model.init' = {scheme!r} is not one of: {', '.join(INIT_SCHEMES)}")
    if INIT_SCHEMES[scheme] is None:
        return
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        INIT_SCHEMES[scheme](module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and module.weight is not None:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier head's parameters: those of the last Linear layer (none without one)."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    return list(linears[-1].parameters()) if linears else []


def head_keys(model: nn.Module) -> list[str]:
    """The classifier head's tensors as `state_dict()` names them: the last Linear layer's (`fc.weight`, ...)."""
    linears = [path for path, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        return []
    return [f"{linears[-1]}.{name}" for name, _ in model.get_submodule(linears[-1]).named_parameters()]


def freeze_backbone_norms(model: nn.Module, epoch: int, cfg) -> None:
    """While the backbone is frozen (`model.freeze_backbone_epochs`), its BatchNorm layers stay in eval mode:
    they normalise with, and keep, their running statistics. Call after `model.train()`."""
    if epoch < cfg.model.freeze_backbone_epochs:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):  # every BatchNorm, however many dims
                module.eval()


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name` (dotted, as in `named_modules()`), or a helpful error."""
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"modules: {', '.join(names)}"
        raise KeyError(f"no submodule named {name!r}; {hint}")
    return model.get_submodule(name)


def freeze_parameters(model: nn.Module, patterns: list[str]) -> list[str]:
    """Set requires_grad=False on parameters whose names match any fnmatch pattern.

    Returns the frozen names; a pattern that matches nothing is an error (likely a typo).
    """
    frozen = []
    names = [n for n, _ in model.named_parameters()]
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ValueError(f"freeze pattern {pattern!r} matches no parameter; parameters: {', '.join(names)}")
        frozen += matched
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return frozen


def grad_norm(model: nn.Module, norm_type: float = 2.0) -> torch.Tensor:
    """The global norm of the gradients, as `clip_grad_norm_` measures it, without clipping.

    Handy to choose `trainer.grad_clip_norm`: a norm that spikes now and then is what clipping tames.
    Frozen parameters and those without a gradient yet are left out; with none it is 0.
    """
    norms = [p.grad.detach().norm(norm_type) for p in model.parameters() if p.grad is not None]
    if not norms:
        return torch.zeros(())
    return torch.stack([n.to(norms[0].device) for n in norms]).norm(norm_type)


def input_gradient(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, criterion) -> torch.Tensor:
    """d(criterion(model(inputs), targets))/d(inputs): how sensitive the loss (the run's, e.g.
    `task.build_criterion(cfg, data_info)`) is to each input value (a saliency map).

    `torch.autograd.grad` differentiates with respect to `inputs` alone, so the model's own `.grad`
    are left as they were (`backward()` would accumulate into them). Eval mode: no dropout noise.
    """
    was_training = model.training
    model.eval()
    try:
        # Also from evaluation code: under inference_mode/no_grad nothing would be recorded.
        with torch.inference_mode(False), torch.enable_grad():
            inputs = inputs.detach().clone().requires_grad_(True)  # a leaf; an inference tensor becomes normal
            loss = criterion(model(inputs), targets)
            (gradient,) = torch.autograd.grad(loss, inputs)
    finally:
        model.train(was_training)
    return gradient
