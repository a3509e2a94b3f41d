"""torchrun + DistributedDataParallel plumbing; under plain `python train.py` one process, no group.

    torchrun --standalone --nproc-per-node=4 train.py ...

torchrun starts one process per GPU and tells each its RANK, LOCAL_RANK and WORLD_SIZE (and the
rendezvous address) through environment variables.
"""

import datetime
import logging
import os
from functools import partial

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from .data.preload import PreloadedLoader
from .data.resumable import ResumableSampler, position_seed
from .data.sampling import BalancedSampler, draw_balanced
from .device import resolve_device
from .utils import derive_seed, seed_everything

log = logging.getLogger(__name__)
STOP_CHECK_STEPS = 10  # optimizer steps between the all-reduces that agree on a stop (a host sync each)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank_seed(seed: int, rank: int) -> int:
    """`seed` made this rank's own: each rank draws its own dropout and random transforms (rank 0 keeps
    `seed`, so one process draws what `python train.py` draws)."""
    return seed if rank == 0 else hash((seed, rank)) % 2**63  # ints hash to themselves: the same in every process


def is_main_process() -> bool:
    """Rank 0 alone shows bars, writes logs, metrics and checkpoints."""
    return get_rank() == 0


def setup_distributed(device_name: str) -> torch.device:
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU) and return this rank's device:
    cuda:LOCAL_RANK (one GPU per local rank), or the CPU. Without torchrun: `device_name` resolved."""
    if "LOCAL_RANK" not in os.environ:  # not started by torchrun: one process
        return resolve_device(device_name)
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    # A bounded timeout: a rank stuck in a collective fails instead of hanging for the default 30 min.
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    return device


def cleanup_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum each tensor over all ranks, in place (a no-op in one process)."""
    if is_distributed():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def agreement_due(steps: int, every_steps: int) -> bool:
    """Whether the ranks agree on a stop or a checkpoint after this optimizer step: every STOP_CHECK_STEPS steps
    (an all-reduce is a host sync), and on each step a checkpoint is due by count; every step in one process."""
    check = STOP_CHECK_STEPS if get_world_size() > 1 else 1
    return steps % check == 0 or bool(every_steps and steps % every_steps == 0)


def any_rank(*flags: bool, device) -> list[bool]:
    """Each flag, true when it is true on any rank (one all-reduce; the flags as given in one process)."""
    if get_world_size() == 1:
        return list(flags)
    summed = torch.tensor(flags, dtype=torch.float32, device=device)
    all_reduce_sum(summed)
    return (summed > 0).tolist()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running stats, which each rank updates from its
    own batches), so all ranks evaluate exactly the model rank 0 saves."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def gather_objects(value) -> list:
    """Every rank's `value` (any picklable object), in rank order; [value] in one process."""
    if not is_distributed():
        return [value]
    values = [None] * get_world_size()
    dist.all_gather_object(values, value)
    return values


def barrier(device: torch.device) -> None:
    """Wait until every rank gets here (e.g. for the checkpoint rank 0 is writing)."""
    if is_distributed():
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)


def report_options(predict_split) -> dict:
    """report.report_best's options under torchrun: each rank predicts its share of a split with
    `predict_split` (report.py's), the shares are gathered to every rank, rank 0 writes the files."""
    if not is_distributed():
        return {}
    return {"predict_outputs": partial(predict_shares, predict_split), "write": is_main_process()}


def predict_shares(predict_split, model, criterion, dataset, cfg, device) -> dict:
    """`predict_split` over this rank's share of `dataset` (no padding: every sample once), merged
    with the other ranks' shares: every rank gets the outputs of every sample."""
    options = {"sampler": ShardSampler(len(dataset), get_rank(), get_world_size())}
    if cfg.data.num_workers:  # see shard_loaders: no fork from a process running the group's threads
        options["multiprocessing_context"] = "forkserver"
    return merge_shares(gather_objects(predict_split(model, criterion, dataset, cfg, device, **options)))


def merge_shares(parts: list[dict]) -> dict:
    """One set of predict_split outputs from every rank's share, in sample order (empty shares: none)."""
    loss_sum = sum(part["loss_sum"] for part in parts)
    weight_sum = sum(part["weight_sum"] for part in parts)
    parts = [part for part in parts if len(part["index"])]
    if not parts:  # report.py says the split is empty
        return {"index": torch.empty(0, dtype=torch.int64), "loss_sum": loss_sum, "weight_sum": weight_sum}
    order = torch.cat([part["index"] for part in parts]).argsort()
    per_sample = [key for key, value in parts[0].items() if isinstance(value, torch.Tensor)]  # index, target, ...
    merged = {key: torch.cat([part[key] for part in parts])[order] for key in per_sample}
    return {**merged, "loss_sum": loss_sum, "weight_sum": weight_sum}


def broadcast_from_main(value):
    """Rank 0's `value` on every rank (any picklable object)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: torch.nn.Module, cfg, device: torch.device) -> torch.nn.Module:
    """Under torchrun: DDP (gradients averaged over ranks during backward; rank 0's weights are
    broadcast first), with SyncBatchNorm when asked for (CUDA only: NCCL)."""
    if not is_distributed():
        return model
    if cfg.trainer.sync_batchnorm and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif cfg.trainer.sync_batchnorm:
        log.warning("trainer.sync_batchnorm needs CUDA devices; ignored on the CPU")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class ShardSampler(Sampler):
    """Every world_size-th index starting at rank, without padding: no sample is evaluated twice."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = range(rank, n, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loaders(train_loader, val_loader, cfg):
    """Each rank trains on its shard of train (padded to equal length: every rank takes the same
    number of steps) and validates on its share of val (not padded); engine.py sums over ranks."""
    rank = get_rank()
    world_size = get_world_size()
    if world_size == 1:
        return train_loader, val_loader
    if isinstance(train_loader, PreloadedLoader):  # data.preload: batches by indexing
        train = ShardedPreloadedLoader(train_loader, rank, world_size)
        return train, ShardedPreloadedLoader(val_loader, rank, world_size)
    per_rank = -(-len(train_loader.dataset) // world_size)
    common = {key: getattr(train_loader, key) for key in ("batch_size", "num_workers", "pin_memory")}
    # A last batch of a single sample would break BatchNorm: drop it only then (never a shard's only sample).
    drop_last = per_rank % cfg.data.batch_size == 1 and per_rank > 1
    order = train_loader.sampler
    order = order.sampler if isinstance(order, ResumableSampler) else order  # the order inside
    if isinstance(order, BalancedSampler):  # data.balanced_sampler: the same draws on every rank, sharded
        order = ShardBalancedSampler(order, rank, world_size)
    else:
        order = DistributedSampler(train_loader.dataset, world_size, rank, shuffle=True, seed=cfg.seed)
    sampler = ShardResumableSampler(order, train_loader.generator, train_loader.batch_size, rank)
    # Worker seeds come from the loader's generator, the same on every rank: offset them per rank.
    common["worker_init_fn"] = partial(seed_worker_for_rank, rank=rank)
    if common["num_workers"]:
        # The process group runs threads in every rank, and forking a threaded process can deadlock
        # the child: workers start from a single-threaded server instead, with torch imported once.
        torch.multiprocessing.set_forkserver_preload(["torch", f"{__package__}.data"])
        common["multiprocessing_context"] = "forkserver"
    train = DataLoader(
        train_loader.dataset,
        sampler=sampler,
        drop_last=drop_last,
        generator=train_loader.generator,
        collate_fn=train_loader.collate_fn,
        **common,
    )
    val_sampler = ShardSampler(len(val_loader.dataset), rank, world_size)
    return train, DataLoader(val_loader.dataset, sampler=val_sampler, collate_fn=val_loader.collate_fn, **common)


class ShardBalancedSampler(Sampler):
    """data.balanced_sampler's share for one rank: every rank draws the same indices (the generator has the
    same seed on every rank) and takes every world_size-th, padded to equal length, as DistributedSampler does."""

    def __init__(self, sampler: BalancedSampler, rank: int, world_size: int):
        self.weights = sampler.weights
        self.generator = sampler.generator
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return -(-len(self.weights) // self.world_size)

    def __iter__(self):
        drawn = draw_balanced(self.weights, len(self) * self.world_size, self.generator)
        return iter(drawn[self.rank :: self.world_size].tolist())


class ShardResumableSampler(ResumableSampler):
    """A ResumableSampler of one rank's shard: its samples draw their own random transforms."""

    def __init__(self, sampler, generator: torch.Generator, batch_size: int, rank: int):
        super().__init__(sampler, generator, batch_size)
        self.rank = rank

    def epoch_base(self) -> int:
        return rank_seed(super().epoch_base(), self.rank)

    def set_epoch(self, epoch: int) -> None:  # DistributedSampler: a new shuffle every epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def seed_worker_for_rank(worker_id: int, rank: int) -> None:
    """Seed a DataLoader worker (as DataLoader itself did) apart from the same worker on other ranks."""
    seed_everything(rank_seed(derive_seed(torch.initial_seed(), "loader"), rank))


class ShardedPreloadedLoader(PreloadedLoader):
    """A PreloadedLoader's share for one rank: every world_size-th sample of the shared order (the
    generator has the same seed on every rank). Train shards are padded to equal size, as
    DistributedSampler pads (every rank takes the same number of steps); val shards are not."""

    def __init__(self, loader: PreloadedLoader, rank: int, world_size: int):
        super().__init__(loader.inputs, loader.targets, loader.batch_size, loader.shuffle, loader.generator)
        self.transform = loader.transform
        self.source = loader.source
        self.weights = loader.weights
        self.take = loader.take  # pinned batches, copied to this rank's GPU as stored
        self.rank = rank
        self.world_size = world_size

    def batch_seed(self, base: int, number: int) -> int:
        return position_seed(rank_seed(base, self.rank), number)  # each rank's batches their own draws

    def num_samples(self) -> int:
        n = len(self.targets)
        return -(-n // self.world_size) if self.shuffle else len(range(self.rank, n, self.world_size))

    def order(self) -> torch.Tensor:
        order = super().order()
        if self.shuffle:  # pad by repeating the order (even when there are fewer samples than ranks)
            total = self.num_samples() * self.world_size
            order = order.repeat(-(-total // len(order)))[:total]
        return order[self.rank :: self.world_size]
