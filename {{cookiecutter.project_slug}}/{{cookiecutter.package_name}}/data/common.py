"""What every dataset type shares: `DataError` and the seeded hold-out split."""

import torch


class DataError(ValueError):
    """Missing or malformed data; the message names the file and what was expected."""


def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train_ids, val_ids): a seeded `fraction` of range(n) held out, the same on every run."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * fraction))
    return sorted(order[n_val:]), sorted(order[:n_val])
