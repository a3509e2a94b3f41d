"""Prefetcher: the loader's batches unchanged and in order, at most depth + 1 alive, nothing left running.

Also `prefetch_depth`: when the trainer prefetches, and that prefetching leaves training unchanged.
"""

{% if cookiecutter.dataset_type != "tabular_csv" %}
import logging
{% endif %}
import multiprocessing
import threading
import time
import weakref

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.prefetch import Prefetcher
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import Trainer, prefetch_depth

CPU = torch.device("cpu")


def make_loader(num_workers: int = 0) -> DataLoader:
    """24 samples in 6 shuffled batches; the same shuffle every time it is built."""
    data = TensorDataset(torch.randn(24, 3, generator=torch.Generator().manual_seed(1)), torch.arange(24))
    generator = torch.Generator().manual_seed(0)
    return DataLoader(data, batch_size=4, shuffle=True, generator=generator, num_workers=num_workers)


def alive() -> tuple[set, set]:
    """This process's threads and child processes (DataLoader workers).

    Left out: the feeder threads of the DataLoader's multiprocessing queues, which its shutdown closes
    and which then end on their own a moment later.
    """
    threads = {thread for thread in threading.enumerate() if thread.name != "QueueFeederThread"}
    return threads, set(multiprocessing.active_children())


def assert_same_batches(got: list, expected: list) -> None:
    for got_batch, expected_batch in zip(got, expected, strict=True):
        assert type(got_batch) is type(expected_batch)
        assert all(torch.equal(a, b) for a, b in zip(got_batch, expected_batch, strict=True))


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("depth", [1, 3])
def test_same_batches_in_the_same_order_as_the_loader(num_workers, depth):
    plain = make_loader(num_workers)
    expected = [list(plain), list(plain)]  # two epochs: the second one is shuffled differently
    before = alive()
    prefetcher = Prefetcher(make_loader(num_workers), CPU, depth)
    got = [list(prefetcher), list(prefetcher)]
    assert alive() == before  # an exhausted epoch joins its thread too
    for got_epoch, expected_epoch in zip(got, expected, strict=True):
        assert_same_batches(got_epoch, expected_epoch)


class Tracked:
    """A collate_fn that keeps a weak reference to every batch it makes: len(live) = batches alive now."""

    def __init__(self):
        self.live = weakref.WeakSet()
        self.peak_at_creation = 0

    def __call__(self, samples):
        batch = default_collate(samples)
        self.live.add(batch[0])
        self.peak_at_creation = max(self.peak_at_creation, len(self.live))
        return batch


@pytest.mark.parametrize("drop_batch_after_step", [False, True])
@pytest.mark.parametrize("depth", [1, 3])
def test_at_most_depth_plus_one_batches_alive(depth, drop_batch_after_step):
    tracked = Tracked()
    loader = DataLoader(TensorDataset(torch.zeros(32, 2)), batch_size=2, collate_fn=tracked)
    peak_in_step = 0
    for batch in Prefetcher(loader, CPU, depth):
        time.sleep(0.005)  # a slow step: the thread gets as far ahead as it may
        peak_in_step = max(peak_in_step, len(tracked.live))
        if drop_batch_after_step:
            del batch
    assert peak_in_step == depth + 1  # the batch in use + depth ahead, and it did get that far ahead
    # While `batch` still holds the previous batch, the thread may already make the next one.
    assert tracked.peak_at_creation <= depth + 1 + (not drop_batch_after_step)
    assert len(tracked.live) == (not drop_batch_after_step)  # the Prefetcher keeps none once exhausted


class LoaderError(Exception):
    pass


class Samples(Dataset):
    """Sample i is tensor([i]); each takes `delay` seconds to load, and sample `fail_at` raises LoaderError."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None):
        self.delay, self.fail_at = delay, fail_at

    def __len__(self):
        return 24

    def __getitem__(self, index):
        time.sleep(self.delay)
        if index == self.fail_at:
            raise LoaderError(f"bad sample {index}")
        return torch.tensor([index])


def slow_loader(num_workers: int) -> DataLoader:
    """Slower than the steps below: when the epoch is left, the thread is busy in next() and must be waited for."""
    return DataLoader(Samples(delay=0.005), batch_size=4, num_workers=num_workers)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_epochs_broken_off_leave_no_thread_or_worker(num_workers):
    before = alive()
    prefetcher = Prefetcher(slow_loader(num_workers), CPU, depth=2)
    for _ in range(5):
        for step, _batch in enumerate(prefetcher):
            if step == 2:
                break
        assert alive() == before


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_in_the_step_leaves_no_thread_or_worker(error, num_workers):
    before = alive()
    with pytest.raises(error, match="step failed"):
        for step, _batch in enumerate(Prefetcher(slow_loader(num_workers), CPU, depth=2)):
            if step == 2:
                raise error("step failed")
    assert alive() == before


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("how", ["close", "drop"])
def test_an_abandoned_epoch_leaves_no_thread_or_worker(how, num_workers):
    before = alive()
    epoch = iter(Prefetcher(slow_loader(num_workers), CPU, depth=2))
    next(epoch)
    if how == "close":
        epoch.close()
    else:
        del epoch  # garbage-collected
    assert alive() == before


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_loader_error_reaches_the_step_with_its_type(num_workers):
    before = alive()
    loader = DataLoader(Samples(fail_at=13), batch_size=4, num_workers=num_workers)
    seen = []
    with pytest.raises(LoaderError, match="bad sample 13"):
        for batch in Prefetcher(loader, CPU, depth=2):
            seen.append(batch)
    assert [batch[0].item() for batch in seen] == [0, 4, 8]  # every batch before the failing one
    assert alive() == before


def test_the_loader_iterator_is_made_in_the_calling_thread():
    class Loader(list):
        def __iter__(self):
            self.made_in = threading.current_thread()
            return super().__iter__()

    loader = Loader([(torch.zeros(1),)] * 3)
    assert len(list(Prefetcher(loader, CPU))) == 3
    assert loader.made_in is threading.current_thread()  # DataLoader workers must not be forked from a thread


def test_len_and_depth_check():
    loader = make_loader()
    assert len(Prefetcher(loader, CPU)) == len(loader) == 6
    for depth in (0, -1):
        with pytest.raises(ValueError, match=f"depth={depth}"):
            Prefetcher(loader, CPU, depth)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("pin_memory", [False, True])
def test_cuda_batches_arrive_on_the_device_equal_to_the_cpu_ones(pin_memory):
    device = torch.device("cuda")
    loader = []  # nested batches, large enough that reading one before its copy has finished would show
    for step in range(8):
        x, y, z = torch.randn(1 << 20), torch.full((4,), step), torch.arange(step + 1)
        if pin_memory:
            x, y, z = x.pin_memory(), y.pin_memory(), z.pin_memory()
        loader.append((x, [y, z]))
    got = []
    for x, yz in Prefetcher(loader, device, depth=2):
        assert type(yz) is list
        assert x.device.type == yz[0].device.type == yz[1].device.type == "cuda"
        got.append((x.clone(), [t.clone() for t in yz]))  # read on the main stream as soon as it arrives
    torch.cuda.synchronize()
    for (x, (y, z)), (gx, (gy, gz)) in zip(loader, got, strict=True):
        assert torch.equal(gx.cpu(), x) and torch.equal(gy.cpu(), y) and torch.equal(gz.cpu(), z)


{% if cookiecutter.dataset_type != "tabular_csv" %}
AUGMENT_OFF = {"data.random_resized_crop": False, "data.horizontal_flip": False}
CROP_ONLY = {"data.random_resized_crop": True, "data.horizontal_flip": False}
FLIP_ONLY = {"data.random_resized_crop": False, "data.horizontal_flip": True}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"data.num_workers": 2}, 3),  # workers draw the augmentations: the thread only fetches
        ({"data.num_workers": 2, **FLIP_ONLY}, 3),
        ({"data.num_workers": 0, **AUGMENT_OFF}, 3),  # nothing random to race for
        ({"data.num_workers": 0, "data.preload": "cpu", **AUGMENT_OFF}, 3),
        ({"data.num_workers": 0, **CROP_ONLY}, 0),  # the thread would draw the crops itself
        ({"data.num_workers": 0, **FLIP_ONLY}, 0),
        ({"data.num_workers": 2, "data.preload": "cpu", **CROP_ONLY}, 0),  # preloaded: augmented in the thread
        ({"data.num_workers": 2, "data.preload": "device", **FLIP_ONLY}, 0),
        ({"data.num_workers": 0, "data.prefetch_batches": 0, **AUGMENT_OFF}, 0),  # off stays off
    ],
    ids=[
        "workers",
        "workers-flip",
        "no-augment",
        "no-augment-preload",
        "crop-no-workers",
        "flip-no-workers",
        "crop-preload",
        "flip-preload-device",
        "off",
    ],
)
def test_prefetch_depth_on_the_cpu(make_config, caplog, settings, expected):
    cfg = make_config(**{"data.prefetch_batches": 3, **settings})
    with caplog.at_level(logging.INFO):
        assert prefetch_depth(cfg, CPU) == expected
    disabled = expected == 0 and cfg.data.prefetch_batches
    assert ("data.prefetch_batches is not used" in caplog.text) == bool(disabled)  # said why, only when it applies


def test_prefetch_depth_on_cuda_is_always_prefetch_batches(make_config):
    # CUDA prefetching only copies on a side stream (no thread, no RNG race).
    cfg = make_config(**{"data.prefetch_batches": 3, "data.num_workers": 0, **CROP_ONLY})
    assert prefetch_depth(cfg, torch.device("cuda")) == 3
{% else %}
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("preload", ["false", "cpu"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_depth_is_prefetch_batches_for_tables(make_config, depth, preload, num_workers):
    # Tables are not augmented: a loader thread draws nothing random, so it may always prefetch.
    cfg = make_config(**{"data.prefetch_batches": depth, "data.preload": preload, "data.num_workers": num_workers})
    assert prefetch_depth(cfg, CPU) == depth
    assert prefetch_depth(cfg, torch.device("cuda")) == depth
{% endif %}


def fit_weights(make_config, tmp_path, depth: int) -> tuple[int, dict]:
    """(depth the trainer used, final weights) of a seeded 1-epoch fit with data.prefetch_batches=depth."""
{% if cookiecutter.dataset_type != "tabular_csv" %}
    cfg = make_config(**{"data.prefetch_batches": depth, **AUGMENT_OFF})  # no workers: prefetched by the thread
{% else %}
    cfg = make_config(**{"data.prefetch_batches": depth})
{% endif %}
    torch.manual_seed(cfg.seed)
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    trainer = Trainer(cfg, model, train_loader, val_loader, info, tmp_path / f"run{depth}", "cpu")
    trainer.fit()
    return trainer.prefetch_batches, {k: v.clone() for k, v in model.state_dict().items()}


def test_prefetching_trains_to_the_same_weights(make_config, tmp_path):
    used, prefetched = fit_weights(make_config, tmp_path, depth=2)
    assert used == 2  # the Prefetcher did run
    _, plain = fit_weights(make_config, tmp_path, depth=0)
    assert prefetched.keys() == plain.keys()
    assert all(torch.equal(prefetched[k], plain[k]) for k in plain)
