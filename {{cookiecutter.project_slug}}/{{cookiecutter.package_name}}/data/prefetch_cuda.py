"""`with_prefetch(loader, cfg, device)`: copy the next batches to the GPU while the step runs, at most `depth` ahead.

No thread: the next `depth` batches are copied host->device on a side CUDA stream with
`non_blocking=True` (from pinned memory: data.pin_memory), so the copies overlap the step's compute.
Bounded: at most `depth + 1` batches live on the GPU at once. On other devices the loader is used
as is (its worker processes already load ahead).

Each `iter()` is one epoch. Leaving it early (break, an exception, Ctrl-C) drops the batches
prepared ahead and shuts down the DataLoader's worker processes.
"""

import collections
import traceback

import torch

__all__ = ["Prefetcher", "with_prefetch"]

_END = object()  # the loader is exhausted


class Prefetcher:
    """Iterate `loader`'s batches, the next `depth` already on their way to `device`."""

    def __init__(self, loader, device, depth: int = 2):
        if depth < 1:
            raise ValueError(f"Prefetcher depth must be >= 1, got depth={depth!r}")
        self.loader = loader
        self.device = torch.device(device)
        self.depth = depth
        # What the loop reads from a loader: the dataset, and the generator (and sampler) it reseeds every epoch.
        self.dataset = loader.dataset
        self.generator = loader.generator
        self.sampler = getattr(loader, "sampler", None)
        # One side stream for all epochs: creating streams is not free and they are never destroyed.
        self._side = torch.cuda.Stream(self.device)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return self._cuda_epoch()

    def _cuda_epoch(self):
        main = torch.cuda.current_stream(self.device)
        it = iter(self.loader)
        ahead = collections.deque()

        def issue():
            batch = next(it, _END)
            if batch is not _END:
                # Copies wait for the main stream's work so far: a batch the step has dropped frees its memory
                # right away (no record_stream, which lets the allocator grow without bound), so a copy must not
                # overwrite it before the kernels that read it have run.
                self._side.wait_stream(main)
                with torch.cuda.stream(self._side):
                    ahead.append(_to_device(batch, self.device))

        try:
            for _ in range(self.depth):
                issue()
            while ahead:
                batch = ahead.popleft()
                main.wait_stream(self._side)  # the step's kernels start once its batch is on the device
                issue()  # issued after that wait, so this copy overlaps the step instead of delaying it
                yield batch
                del batch
        except BaseException as err:
            # A loader error's traceback holds the DataLoader iterator (its frames' `self`), which would keep the
            # workers alive as long as the error is held: clear those frames' variables (the traceback still prints).
            traceback.clear_frames(err.__traceback__)
            raise
        finally:
            ahead.clear()
            # A DataLoader's iterator shuts its worker processes down when it is freed (persistent workers stay
            # with the DataLoader for the next epoch): dropped here, so freed now, not at a later garbage collection.
            it = None


def with_prefetch(loader, cfg, device):
    """`loader`, or a bounded side-stream Prefetcher over it on a CUDA device."""
    if not cfg.data.prefetch_batches or torch.device(device).type != "cuda":
        return loader
    return Prefetcher(loader, device, cfg.data.prefetch_batches)


def _to_device(batch, device):
    """Copy the tensors of a (nested) tuple/list/dict batch to `device`; anything else is kept as is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch
