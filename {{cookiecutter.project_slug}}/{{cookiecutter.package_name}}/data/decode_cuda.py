"""Decoding a whole split once (preloading, the mean/std): in DataLoader worker processes on the CPU or, with
data.decode_device=cuda, JPEG files in batches on the GPU (nvJPEG, through TorchCodec: the `gpu-decode`
extra) while the workers only read the bytes."""

from pathlib import Path

import torch
import torchvision.transforms.v2.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..errors import ConfigError
from ..utils import show_progress
from .augment import INTERPOLATION, decode_transform


def decoded_batches(dataset, cfg, desc: str, batch_size: int, ids):
    """Batches of uint8 images as preloading stores them (`Resize`; no augmentation)."""
    if cfg.data.decode_device == "cuda":
        check_gpu_decoding(dataset)
        batches = gpu_decoded(dataset, cfg, batch_size, ids, torch.device("cuda"))
    else:
        plain = dataset.with_transform(decode_transform(dataset.size, dataset.resize))
        batches = DataLoader(
            Subset(plain, ids), batch_size, num_workers=cfg.data.num_workers, collate_fn=plain.collate_fn
        )
    total = -(-len(ids) // batch_size)
    return tqdm(batches, desc=desc, total=total, leave=False, disable=not show_progress(cfg.trainer.progress_bar))


def check_gpu_decoding(dataset) -> None:
    key = "config key 'data.decode_device' = 'cuda'"
    if not torch.cuda.is_available():
        raise ConfigError(f"{key} needs a CUDA GPU, and there is none here; use data.decode_device=cpu")
    if dataset.samples and not isinstance(dataset.samples[0][0], str):
        raise ConfigError(f"{key} decodes image files; these images are arrays in memory: use data.decode_device=cpu")
    try:
        import torchcodec  # noqa: F401
    except ImportError:
        raise ConfigError(f"{key} needs TorchCodec: pip install -e '.[gpu-decode]'") from None


class FileBytes(Dataset):
    """(the bytes of a sample's file, its label): all a worker reads when the GPU decodes."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        source, label = self.samples[index]
        return torch.frombuffer(bytearray(Path(source).read_bytes()), dtype=torch.uint8), label


def as_lists(batch):
    return [data for data, _ in batch], torch.tensor([label for _, label in batch])


def gpu_decoded(dataset, cfg, batch_size: int, ids, device: torch.device):
    """TorchCodec decodes each batch of files at once (upright per EXIF), resized on `device`. A batch holding
    a file it cannot decode (a PNG, a corrupt file) is decoded on the CPU, as the lazy path does."""
    from torchcodec.decoders import decode_jpeg  # the optional gpu-decode extra

    mode = "RGB" if dataset.mode == "RGB" else "GRAY"
    on_cpu = dataset.with_transform(decode_transform(dataset.size, dataset.resize))
    files = Subset(FileBytes(dataset.samples), ids)
    loader = DataLoader(files, batch_size, num_workers=cfg.data.num_workers, collate_fn=as_lists)
    for start, (data, labels) in zip(range(0, len(ids), batch_size), loader, strict=True):
        try:
            images = decode_jpeg(data, mode=mode, device=device)
        except RuntimeError:
            yield on_cpu.collate_fn([on_cpu[i] for i in ids[start : start + batch_size]])
            continue
        yield torch.stack([stored(image, dataset) for image in images]).cpu(), labels


def stored(image: torch.Tensor, dataset) -> torch.Tensor:
    """One decoded image as `decode_transform` stores it (squashed, or shorter side resized and the centre kept)."""
    if not dataset.resize.side:
        return F.resize(image, [dataset.size, dataset.size], antialias=True)
    side = dataset.resize.side
    mode = INTERPOLATION[dataset.resize.interpolation]
    return F.center_crop(F.resize(image, side, mode, antialias=True), side)
