"""Images of your own (folders and lists): progress bars while preloading, computing mean/std and writing
the sample, and corrupt files dropped from the preload."""

import io
import logging
import shutil
import sys

from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.sample import write_sample


class Terminal(io.StringIO):
    """stderr as a terminal would be: tqdm draws its bars into it."""

    def isatty(self):
        return True


def test_preloading_shows_bars(make_config, monkeypatch):
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    build_dataloaders(make_config(**{"trainer.progress_bar": True, "data.preload": "cpu"}))
    assert "preload train:" in stream.getvalue() and "preload val:" in stream.getvalue(), stream.getvalue()


def test_computing_mean_std_shows_a_bar(make_config, monkeypatch):
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    build_dataloaders(make_config(**{"trainer.progress_bar": True}))  # data.mean/std empty: computed from train
    assert "computing mean/std:" in stream.getvalue(), stream.getvalue()


def test_writing_sample_images_shows_a_bar(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    write_sample(tmp_path / "sample", train_per_class=2, val_per_class=1)
    assert "writing sample images:" in stream.getvalue()


def test_corrupt_images_are_dropped_from_the_preload(tmp_path, make_config, data_root, caplog):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    victim = next(p for p in sorted(root.rglob("*")) if p.suffix in (".png", ".jpg"))
    victim.write_bytes(b"garbage")
    settings = {"data.root": root, "data.skip_corrupt": True}
    lazy_train, lazy_val, _ = build_dataloaders(make_config(**settings))
    with caplog.at_level(logging.WARNING):
        train_loader, val_loader, _ = build_dataloaders(make_config(**settings, **{"data.preload": "cpu"}))
    assert "skipped 1 corrupt" in caplog.text and victim.name in caplog.text
    total = len(train_loader.targets) + len(val_loader.targets)
    assert total == len(lazy_train.dataset) + len(lazy_val.dataset) - 1
