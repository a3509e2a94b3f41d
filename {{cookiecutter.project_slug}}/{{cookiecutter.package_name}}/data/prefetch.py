"""`Prefetcher(loader, device, depth)`: prepare the next batches while the training step runs, at most `depth` ahead.

Why bounded: a prefetch_generator-style thread with an unbounded queue runs as far ahead as the loader lets
it, and when loading is faster than training the whole epoch piles up in memory until the run dies out of
memory. Here at most `depth + 1` batches are alive at once: the one the step uses and `depth` ahead (one more
for a moment if the caller's loop variable still holds the previous batch while the next one is prepared).

- CPU device: a daemon thread calls next() on the loader's iterator and hands the CPU batches over a queue;
  nothing is copied to a device there. The iterator is created in the calling thread, so DataLoader workers
  are never forked from a side thread. A semaphore of `depth + 1` tokens bounds the thread: it takes one per
  batch and gets it back when the consumer asks for the next batch (a plain `queue.Queue(maxsize=depth)`
  would allow `depth + 2`: the full queue, plus the batch the thread holds while blocked in put(), plus the
  batch in use).
- CUDA device: no thread. The next `depth` batches are copied host->device on a side stream with
  `non_blocking=True`, so the copies overlap the step's compute (use pinned memory for a truly async copy).

Each `iter()` is one epoch. Leaving it early (break, an exception, Ctrl-C, the iterator being closed or
garbage-collected) stops and joins the thread and shuts down the DataLoader's worker processes.
"""

import collections
import queue
import threading

import torch

__all__ = ["Prefetcher"]

_END = object()  # the loader is exhausted


class _Failure:
    """The loader raised: carried to the consumer, which re-raises it with its own type."""

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate `loader`'s batches with at most `depth` batches prepared ahead of the training step."""

    def __init__(self, loader, device, depth: int = 2):
        if depth < 1:
            raise ValueError(f"Prefetcher depth must be >= 1, got depth={depth!r}")
        self.loader = loader
        self.device = torch.device(device)
        self.depth = depth
        # One side stream for all epochs: creating streams is not free and they are never destroyed.
        self._side = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        if self._side is not None:
            return self._cuda_epoch()
        return self._thread_epoch()

    def _thread_epoch(self):
        it = iter(self.loader)  # here, not in the thread: DataLoader workers must not be forked from it
        tokens = threading.Semaphore(self.depth + 1)
        ready = queue.SimpleQueue()  # unbounded, but never holds more than the tokens allow
        stop = threading.Event()
        thread = threading.Thread(target=_produce, args=(it, tokens, ready, stop), name="Prefetcher", daemon=True)
        try:
            thread.start()
            while True:
                item = ready.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
                del item  # the step is done with this batch: the thread may prepare one more
                tokens.release()
        finally:
            stop.set()
            tokens.release()  # wakes the thread if it waits for a token; it then sees `stop`
            thread.join()
            while not ready.empty():  # free the batches prepared for nothing
                ready.get_nowait()
            _shutdown(self.loader, it)

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
        finally:
            ahead.clear()
            _shutdown(self.loader, it)


def _produce(it, tokens, ready, stop):
    """Thread body: put the loader's batches, then _END or a _Failure, on `ready`; one token per batch."""
    try:
        while True:
            tokens.acquire()
            if stop.is_set():
                return
            ready.put(next(it))
    except StopIteration:
        ready.put(_END)
    except BaseException as error:  # any loader error, re-raised by the consumer
        ready.put(_Failure(error))


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


def _shutdown(loader, it) -> None:
    """Stop the DataLoader's worker processes now rather than when `it` is garbage-collected.

    Persistent workers are meant to outlive the epoch: the next iter() reuses (and resets) them.
    """
    shutdown_workers = getattr(it, "_shutdown_workers", None)
    if shutdown_workers is not None and not getattr(loader, "persistent_workers", False):
        shutdown_workers()
