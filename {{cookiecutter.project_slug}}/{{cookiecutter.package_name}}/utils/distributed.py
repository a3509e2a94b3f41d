"""torchrun + DistributedDataParallel plumbing; under plain `python train.py` everything is a no-op.

    torchrun --standalone --nproc-per-node=4 train.py ...

torchrun starts one process per GPU and tells each its RANK, LOCAL_RANK and
WORLD_SIZE (and the rendezvous address) through environment variables.
"""

import datetime
import os

import torch
import torch.distributed as dist

from .device import resolve_device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 alone shows bars, writes logs, metrics and checkpoints."""
    return get_rank() == 0


def rank_device(device_name: str) -> torch.device:
    """This process's device: under torchrun cuda:LOCAL_RANK (any index in `device_name` is
    ignored: one GPU per local rank), or the CPU; otherwise `device_name` resolved."""
    if "LOCAL_RANK" not in os.environ:  # not started by torchrun: one process
        return resolve_device(device_name)
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    return torch.device("cuda", int(os.environ["LOCAL_RANK"])) if use_cuda else torch.device("cpu")


def setup_distributed(device_name: str) -> torch.device:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPU) and return this rank's device."""
    device = rank_device(device_name)
    if "LOCAL_RANK" not in os.environ:
        return device
    use_cuda = device.type == "cuda"
    if use_cuda:
        torch.cuda.set_device(device)  # one device per local rank
    # A bounded timeout: a rank stuck in a collective fails instead of hanging for the default 30 min.
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    return device


def cleanup_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum each tensor over all ranks, in place (a no-op in one process)."""
    if is_distributed():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (e.g. BatchNorm running stats, which each rank updates
    from its own batches), so all ranks evaluate exactly the model rank 0 saves."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_from_main(value):
    """Rank 0's `value` on every rank (any picklable object)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
