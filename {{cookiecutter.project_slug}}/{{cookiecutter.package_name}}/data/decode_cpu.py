"""Decoding a whole split once (preloading, the mean/std): in DataLoader worker processes."""

from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..utils import show_progress
from .augment import decode_transform


def decoded_batches(dataset, cfg, desc: str, batch_size: int, ids):
    """Batches of uint8 images as preloading stores them (`Resize`; no augmentation), decoded in worker processes."""
    plain = dataset.with_transform(decode_transform(dataset.size, dataset.resize))
    loader = DataLoader(Subset(plain, ids), batch_size, num_workers=cfg.data.num_workers, collate_fn=plain.collate_fn)
    return tqdm(loader, desc=desc, leave=False, disable=not show_progress(cfg.trainer.progress_bar))
