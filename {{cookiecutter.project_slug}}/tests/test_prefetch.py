"""The CUDA side-stream Prefetcher: the loader's batches unchanged and in order on the GPU, at most depth + 1
there, no worker left running; `with_prefetch` leaves the loader as it is off CUDA and when it is turned off.
"""

import multiprocessing
import time
from collections import namedtuple

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.prefetch import Prefetcher, _to_device, with_prefetch
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import build_criterion

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")
Pair = namedtuple("Pair", ["image", "label"])


def make_loader(num_workers: int = 0) -> DataLoader:
    """24 samples in 6 shuffled batches; the same shuffle every time it is built."""
    data = TensorDataset(torch.randn(24, 3, generator=torch.Generator().manual_seed(1)), torch.arange(24))
    generator = torch.Generator().manual_seed(0)
    return DataLoader(data, batch_size=4, shuffle=True, generator=generator, num_workers=num_workers)


class Batches(list):
    """Ready batches in a list, with the two attributes the Prefetcher reads from a DataLoader."""

    dataset = None
    generator = None


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


class LoaderError(Exception):
    pass


def slow_loader(num_workers: int = 2, **kwargs) -> DataLoader:
    """Slower than the steps below: when the epoch is left, the workers are still busy."""
    return DataLoader(Samples(delay=0.005), batch_size=4, num_workers=num_workers, **kwargs)


def workers() -> set:
    """This process's child processes (DataLoader workers)."""
    return set(multiprocessing.active_children())


@pytest.mark.parametrize(("device", "depth"), [("cpu", 2), ("mps", 2), ("cpu", 0), ("cuda", 0)])
def test_with_prefetch_leaves_the_loader_as_is_off_cuda_or_when_off(make_config, device, depth):
    loader = make_loader()
    assert with_prefetch(loader, make_config(**{"data.prefetch_batches": depth}), torch.device(device)) is loader


def test_depth_must_be_at_least_one(make_config):
    for depth in (0, -1):  # checked before anything touches the GPU
        with pytest.raises(ValueError, match=f"depth={depth}"):
            Prefetcher(make_loader(), CUDA, depth)
    with pytest.raises(ConfigError, match="'data.prefetch_batches' = -1"):  # an error, not "off"
        make_config(**{"data.prefetch_batches": -1})


def assert_same_structure(got, expected, device: torch.device) -> None:
    assert type(got) is type(expected)
    if isinstance(expected, torch.Tensor):
        assert got.device.type == device.type and torch.equal(got.cpu(), expected)
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            assert_same_structure(got[key], expected[key], device)
    elif isinstance(expected, (tuple, list)):
        assert len(got) == len(expected)
        for got_item, expected_item in zip(got, expected, strict=True):
            assert_same_structure(got_item, expected_item, device)
    else:
        assert got is expected  # anything else is kept as is


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_to_device_keeps_the_batch_structure(device):
    batch = (
        torch.arange(6).view(2, 3),
        [torch.ones(2), {"mask": torch.zeros(2, dtype=torch.bool), "pair": Pair(torch.ones(1), "cat")}],
        ("ids", 7, None),
    )
    assert_same_structure(_to_device(batch, torch.device(device)), batch, torch.device(device))


def test_freeing_an_iterator_stops_its_workers_now_and_persistent_ones_stay():
    """What the Prefetcher relies on when an epoch is left early: the public DataLoader frees its workers with its
    iterator (no private `_shutdown_workers` call), and persistent workers outlive it for the next epoch."""
    before = workers()
    it = iter(slow_loader())
    next(it)
    assert workers() > before  # the epoch's workers are running
    del it
    assert workers() == before
    loader = slow_loader(persistent_workers=True)
    it = iter(loader)
    next(it)
    running = workers()
    del it
    assert workers() == running  # kept for the next epoch (which resets them)
    del loader
    assert workers() == before


@needs_cuda
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("depth", [1, 3])
def test_same_batches_in_the_same_order_as_the_loader(num_workers, depth):
    plain = make_loader(num_workers)
    expected = [list(plain), list(plain)]  # two epochs: the second one is shuffled differently
    before = workers()
    prefetcher = Prefetcher(make_loader(num_workers), CUDA, depth)
    assert len(prefetcher) == len(plain) == 6
    got = [list(prefetcher), list(prefetcher)]
    assert workers() == before
    for got_epoch, expected_epoch in zip(got, expected, strict=True):
        assert_same_structure(got_epoch, expected_epoch, CUDA)


@needs_cuda
@pytest.mark.parametrize("pin_memory", [False, True])
def test_cuda_batches_arrive_on_the_device_equal_to_the_cpu_ones(pin_memory):
    loader = Batches()  # nested batches, large enough that reading one before its copy has finished would show
    for step in range(8):
        x, y, z = torch.randn(1 << 20), torch.full((4,), step), torch.arange(step + 1)
        if pin_memory:
            x, y, z = x.pin_memory(), y.pin_memory(), z.pin_memory()
        loader.append((x, [y, z]))
    got = []
    for x, yz in Prefetcher(loader, CUDA, depth=2):
        got.append((x.clone(), [t.clone() for t in yz]))  # read on the main stream as soon as it arrives
    torch.cuda.synchronize()
    assert_same_structure(got, list(loader), CUDA)


@needs_cuda
@pytest.mark.parametrize("depth", [1, 3])
def test_at_most_depth_plus_one_batches_on_the_device(depth):
    nbytes = 1 << 20  # per batch
    loader = Batches((torch.full((nbytes // 4,), float(i)),) for i in range(8))
    torch.cuda.synchronize()
    base, peak = torch.cuda.memory_allocated(), 0
    for batch in Prefetcher(loader, CUDA, depth):
        peak = max(peak, torch.cuda.memory_allocated() - base)
        del batch
    assert peak == (depth + 1) * nbytes  # the batch in use + depth ahead, and it did get that far ahead
    assert torch.cuda.memory_allocated() == base  # the Prefetcher keeps none once exhausted


@needs_cuda
@pytest.mark.parametrize("how", ["error", "interrupt", "close", "drop"])
def test_an_epoch_left_early_leaves_no_worker(how):
    before = workers()
    prefetcher = Prefetcher(slow_loader(), CUDA, depth=2)
    for _ in range(2):  # the next epoch starts afresh
        epoch = iter(prefetcher)
        next(epoch)
        if how in ("error", "interrupt"):
            error = RuntimeError if how == "error" else KeyboardInterrupt
            with pytest.raises(error, match="step failed"):
                for _batch in epoch:
                    raise error("step failed")
        elif how == "close":
            epoch.close()
        del epoch  # garbage-collected
        assert workers() == before


@needs_cuda
def test_a_loader_error_reaches_the_step_with_its_type():
    before = workers()
    loader = DataLoader(Samples(fail_at=13), batch_size=4, num_workers=2)
    seen = []
    with pytest.raises(LoaderError, match="bad sample 13"):
        for batch in Prefetcher(loader, CUDA, depth=2):
            seen.append(int(batch[0]))
    assert seen == [0, 4, 8][: len(seen)]  # in order, and none after the failing one
    assert workers() == before


def fit_weights(make_config, tmp_path, depth: int) -> dict:
    """Final weights of a seeded 1-epoch fit on CUDA with data.prefetch_batches=depth."""
    cfg = make_config(**{"data.prefetch_batches": depth, "trainer.device": "cuda", "trainer.amp": False})
    train_loader, val_loader, info = build_dataloaders(cfg, device=CUDA)
    train_loader = with_prefetch(train_loader, cfg, CUDA)
    assert isinstance(train_loader, Prefetcher) == (depth > 0)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, info).to(CUDA)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    criterion = build_criterion(cfg, info)
    run_dir = tmp_path / f"run{depth}"
    Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, info, run_dir, CUDA).fit()
    return {name: value.cpu() for name, value in model.state_dict().items()}


@needs_cuda
def test_prefetching_trains_to_the_same_weights(make_config, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    prefetched, plain = fit_weights(make_config, tmp_path, 2), fit_weights(make_config, tmp_path, 0)
    assert prefetched.keys() == plain.keys()
    for name, value in plain.items():
        assert torch.equal(prefetched[name], value), name
