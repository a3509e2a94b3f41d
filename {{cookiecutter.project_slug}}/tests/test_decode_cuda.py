"""data.decode_device: JPEG files decoded in batches by torchvision (nvjpeg on the GPU), the rest on the CPU.

The batched path is the same code on any device: here it runs on the CPU and is compared with the
per-image decode; without a GPU the key's `cuda` value is refused.
"""

import sys

import pytest
import torch
from PIL import Image
from test_images import photo

from {{ cookiecutter.package_name }}.data import build_dataloaders, decode
from {{ cookiecutter.package_name }}.data.augment import decode_transform
from {{ cookiecutter.package_name }}.data.images import ImageDataset, open_image
from {{ cookiecutter.package_name }}.errors import ConfigError

SIZE = 48


def test_cuda_decoding_without_a_gpu_is_refused(make_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"'data.decode_device' = 'cuda' needs a CUDA GPU.*data.decode_device=cpu"):
        build_dataloaders(make_config(**{"data.preload": "cpu", "data.decode_device": "cuda"}))


def test_cuda_decoding_names_what_else_it_needs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # past the GPU check
    with pytest.raises(ConfigError, match="decodes image files; these images are arrays in memory"):
        decode.check_gpu_decoding(ImageDataset([(0, 0)], None, "RGB", SIZE))
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # not installed
    with pytest.raises(ConfigError, match=r"needs TorchCodec: pip install -e '.\[gpu-decode\]'"):
        decode.check_gpu_decoding(ImageDataset([("a.jpg", 0)], None, "RGB", SIZE))


def test_batched_decoding_matches_the_per_image_one(tmp_path, make_config):
    pytest.importorskip("torchcodec", reason='needs torchcodec: pip install -e ".[gpu-decode]"')
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: both paths must turn it upright
    paths = []
    for i, params in enumerate([{}, {}, {"exif": exif.tobytes()}, {}, {}]):
        path = tmp_path / f"{i}.jpg"
        photo(320 + 16 * i, 240).save(path, quality=90, **params)
        paths.append(str(path))
    photo(100, 80).save(tmp_path / "5.png")  # not a JPEG: its batch is decoded on the CPU
    paths.append(str(tmp_path / "5.png"))
    dataset = ImageDataset([(path, i % 2) for i, path in enumerate(paths)], open_image, "RGB", SIZE)
    cfg = make_config()
    batches = list(decode.gpu_decoded(dataset, cfg, 3, range(len(paths)), torch.device("cpu")))
    images = torch.cat([x for x, _ in batches])
    assert torch.equal(torch.cat([y for _, y in batches]), torch.tensor([0, 1, 0, 1, 0, 1]))
    assert images.dtype == torch.uint8 and images.shape == (6, 3, SIZE, SIZE)
    for image, path in zip(images, paths, strict=True):
        expected = decode_transform(SIZE)(open_image(path)).float()
        assert (image.float() - expected).abs().mean() < 3, path  # two decoders, two resamplers
