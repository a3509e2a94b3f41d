"""Data-loading benchmark for a generated project, measured side by side in one run.

    python benchmarks/data_loading.py [--images 2000] [--repeats 3]

1. Lazy vs preloaded image folder: samples/s of one pass over the train loader
   (decode + resize + augment + normalise), `data.preload=false` vs `cpu`.
2. Bounded prefetch when loading is slow: a loader with simulated I/O latency and a
   training step that costs about as much. Without prefetch an epoch takes about
   load + step; with it, about max(load, step).

It renders the template (image_folder, use_prefetch=yes) into a temp folder and imports
the generated package, so it measures exactly the code users get. Ratios are medians
of interleaved repeats, so machine noise hits both sides alike.
"""

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rendering import render_image_folder_project


def render(out: Path) -> tuple[Path, str]:
    return render_image_folder_project(out, "bench data", use_prefetch=True), "bench_data"


def write_images(root: Path, count: int, sample_module) -> None:
    per_class = count // len(sample_module.CLASSES)
    sample_module.write_sample(root, train_per_class=per_class, val_per_class=4)


def epoch_seconds(loader) -> float:
    start = time.perf_counter()
    for _batch in loader:
        pass
    return time.perf_counter() - start


def bench_preload(pkg: str, data_root: Path, repeats: int, num_workers: int) -> None:
    config = importlib.import_module(f"{pkg}.config")
    data = importlib.import_module(f"{pkg}.data")
    overrides = [
        f"data.root={data_root}",
        "trainer.device=cpu",
        "data.batch_size=64",
        "data.image_size=64",
        f"data.num_workers={num_workers}",
        "data.mean=[0.5,0.5,0.5]",
        "data.std=[0.25,0.25,0.25]",
    ]
    lazy, _, _ = data.build_dataloaders(config.load_config(None, overrides))
    start = time.perf_counter()
    preloaded, _, _ = data.build_dataloaders(
        config.load_config(None, [*overrides, "data.preload=cpu"])
    )
    decode_once = time.perf_counter() - start
    n = len(lazy.dataset)
    times = {"lazy": [], "preload": []}
    for _ in range(repeats):  # interleaved: both sides see the same machine load
        times["lazy"].append(epoch_seconds(lazy))
        times["preload"].append(epoch_seconds(preloaded))
    lazy_s, pre_s = statistics.median(times["lazy"]), statistics.median(times["preload"])
    print(
        f"image folder, {n} train images 64x64, batch 64, num_workers={num_workers}, "
        "augmentation on:"
    )
    print(f"  lazy       {n / lazy_s:10.0f} samples/s  ({lazy_s:.3f} s/epoch)")
    print(
        f"  preload    {n / pre_s:10.0f} samples/s  ({pre_s:.3f} s/epoch; "
        f"one-time decode {decode_once:.2f} s)"
    )
    print(f"  ratio preload/lazy samples/s: {lazy_s / pre_s:.1f}x")


class SlowDataset(torch.utils.data.Dataset):
    """Fixed tensors behind a simulated I/O latency per sample.

    time.sleep releases the GIL, as real I/O does.
    """

    def __init__(self, n: int, latency_s: float):
        self.x = torch.randn(n, 256)
        self.y = torch.randint(0, 10, (n,))
        self.latency_s = latency_s

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        time.sleep(self.latency_s)
        return self.x[i], self.y[i]


def bench_prefetch(
    pkg: str, repeats: int, batches: int = 20, batch_size: int = 8, latency_ms: float = 2.0
) -> None:
    if not torch.cuda.is_available():
        # The project's prefetcher copies batches to the GPU on a side stream; on the CPU the
        # loader's worker processes already load ahead, so there is nothing to compare.
        print("prefetch: needs CUDA (the side-stream prefetcher); skipped on this machine")
        return
    Prefetcher = importlib.import_module(f"{pkg}.data.prefetch").Prefetcher
    device = torch.device("cuda")
    dataset = SlowDataset(batches * batch_size, latency_ms / 1000)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=2, pin_memory=True
    )
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    load_s = batches * batch_size * latency_ms / 1000

    def step(inputs, targets, repeat):
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        for _ in range(repeat):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(
                model(inputs.repeat(16, 1)), targets.repeat(16)
            ).backward()
            optimizer.step()

    # Calibrate the step to cost about as much as loading one batch.
    x, y = dataset.x[:batch_size], dataset.y[:batch_size]
    start = time.perf_counter()
    step(x, y, 10)
    per_step = (time.perf_counter() - start) / 10
    repeat = max(1, round(load_s / batches / per_step))
    step_s = batches * repeat * per_step

    def epoch(batches_iter):
        start = time.perf_counter()
        for inputs, targets in batches_iter:
            step(inputs, targets, repeat)
        return time.perf_counter() - start

    times = {"plain": [], "prefetch": []}
    for _ in range(repeats):
        times["plain"].append(epoch(loader))
        times["prefetch"].append(epoch(Prefetcher(loader, device, depth=2)))
    plain, fetched = statistics.median(times["plain"]), statistics.median(times["prefetch"])
    print(
        f"slow loading ({latency_ms:.0f} ms/sample, {batches} batches of {batch_size}), "
        "step about as costly, CUDA:"
    )
    print(
        f"  load alone {load_s:.3f} s, step alone {step_s:.3f} s: "
        f"sum {load_s + step_s:.3f} s, max {max(load_s, step_s):.3f} s"
    )
    print(f"  no prefetch  {plain:.3f} s/epoch")
    print(f"  prefetch 2   {fetched:.3f} s/epoch")
    print(
        f"  ratio no-prefetch/prefetch: {plain / fetched:.2f}x; "
        f"prefetch/max(load, step): {fetched / max(load_s, step_s):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", type=int, default=2000, help="train images in the image-folder benchmark"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats per side (median reported)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=2, help="DataLoader workers of the lazy loader"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project, pkg = render(Path(tmp))
        sys.path.insert(0, str(project))
        torch.manual_seed(0)
        data_root = Path(tmp) / "images"
        write_images(data_root, args.images, importlib.import_module(f"{pkg}.data.sample"))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        bench_preload(pkg, data_root, args.repeats, args.num_workers)
        bench_prefetch(pkg, args.repeats)


if __name__ == "__main__":
    main()
