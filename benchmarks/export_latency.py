"""Inference latency on the CPU: the exported ONNX model in onnxruntime vs the eager PyTorch model.

    python benchmarks/export_latency.py [--models simple_cnn:64 resnet18:224 mlp] [--batches 1 64]
                                        [--iterations 20] [--repeats 3] [--threads 2]

For each model, rendered into a temp folder (image_folder for image models, tabular_csv for mlp):
train one epoch on a small sample (weights do not change the timing), `python export.py` it to ONNX
(its parity check included), then time the forward pass of a batch of validation-shaped inputs, in
ms per image, at each batch size: eager PyTorch (`model.eval()`, `torch.inference_mode()`) and the
.onnx file in onnxruntime (CPUExecutionProvider), both with --threads intra-op threads. Sides run
interleaved in --repeats rounds; each figure is the median round's mean over --iterations calls.
`speedup` is eager / onnxruntime: above 1, onnxruntime is faster.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rendering import import_project, quiet_fds, render_image_folder_project


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    models = ["simple_cnn:64", "resnet18:224", "mlp"]
    models_help = "model[:image size]; mlp is timed on the tabular sample"
    parser.add_argument("--models", nargs="+", default=models, help=models_help)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--iterations", type=int, default=20, help="calls per round and side")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both sides")
    return parser.parse_args(argv)


def exported_model(out: Path, name: str, size: int | None):
    """(eager model in eval mode, onnxruntime session, one validation input) for `name`, trained
    one epoch in a freshly rendered project and exported by its export.py."""
    tabular = name == "mlp"
    dataset_type = "tabular_csv" if tabular else "image_folder"
    answers = {"dataset_type": dataset_type, "gpu": "none"}
    project = render_image_folder_project(out, f"latency {name}", **answers)
    m = import_project(project)  # puts the project on sys.path
    import export  # this project's scripts (the next model's project has its own: see the end)
    import onnxruntime
    import train

    data = out / "data"
    if tabular:
        m.sample.write_sample(data, train_rows=200, val_rows=64)
    else:
        m.sample.write_sample(data, train_per_class=4, val_per_class=2)
    overrides = [
        f"data.root={data}", f"output_dir={out / 'runs'}", "run_name=run", "trainer.epochs=1",
        "trainer.device=cpu", "data.num_workers=0", "trainer.progress_bar=false",
        f"model.name={name}", *([] if tabular else [f"data.image_size={size}"]),
    ]  # fmt: skip
    run_dir, onnx_file = out / "runs" / "run", out / "model.onnx"
    with quiet_fds(1, 2):
        assert train.main(overrides) == 0
        assert export.main([str(run_dir), "--output", str(onnx_file)]) == 0
        state = export.load_checkpoint(run_dir)
        cfg = m.config.load_config(base=state["config"])
        model = m.models.build_model(cfg, state["data_info"])
        export.load_model_weights(model, state)
        sample = export.validation_batch(cfg, state["data_info"], 1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    cpu = ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=cpu)
    for module in ("export", "train", "predict", "evaluate"):
        sys.modules.pop(module, None)
    sys.path.remove(str(project))
    return model.eval(), session, sample


def ms_per_image(run, batch: torch.Tensor, iterations: int) -> float:
    run(batch)  # warm-up: first-call allocations and kernel choices
    start = time.perf_counter()
    for _ in range(iterations):
        run(batch)
    return (time.perf_counter() - start) / iterations / len(batch) * 1000


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} rounds x "
          f"{args.iterations} calls")  # fmt: skip
    print(f"{'model':<12} {'input':<12} {'batch':>5} {'eager ms/img':>13} "
          f"{'onnxruntime ms/img':>19} {'speedup':>8}")  # fmt: skip
    for spec in args.models:
        name, _, size = spec.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            model, session, sample = exported_model(Path(tmp), name, int(size) if size else None)

            def eager(batch, model=model):
                with torch.inference_mode():
                    return model(batch)

            def onnx(batch, session=session):
                return session.run(["logits"], {"input": batch.numpy()})[0]

            for size_of_batch in args.batches:
                batch = sample.expand(size_of_batch, *sample.shape[1:]).contiguous()
                rounds = {"eager": [], "onnx": []}
                for round_index in range(args.repeats):
                    sides = [("eager", eager), ("onnx", onnx)]
                    for side, run in sides if round_index % 2 == 0 else sides[::-1]:
                        rounds[side].append(ms_per_image(run, batch, args.iterations))
                eager_ms, onnx_ms = (statistics.median(rounds[side]) for side in ("eager", "onnx"))
                shape = "x".join(map(str, sample.shape[1:]))
                speedup = eager_ms / onnx_ms
                print(f"{name:<12} {shape:<12} {size_of_batch:>5} {eager_ms:>13.4g} "
                      f"{onnx_ms:>19.4g} {speedup:>7.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
