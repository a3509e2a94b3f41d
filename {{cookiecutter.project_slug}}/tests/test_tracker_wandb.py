"""Weights & Biases, offline: the logged metrics equal metrics.csv, also across a stop and --resume.

Needs the `wandb` extra (in the dev extra of this project). The offline runs' .wandb files are read back.
"""

import csv
import json
import sys

import pytest

import train
from {{ cookiecutter.package_name }}.tracker import Tracker

TRACKER = {"tracker.enabled": True}
BLOCK = 32768  # the .wandb file is a LevelDB-style log of protobuf records in 32 KiB blocks


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No API key and no network: tracker.mode=auto must pick offline by itself."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # an empty one: no `wandb login` either
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def read_records(path):
    """The protobuf records of a .wandb file."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, position, pending = path.read_bytes(), 7, b""  # a 7-byte header: ":W&B", magic, version
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if BLOCK - position % BLOCK < 7:  # a block's tail too short for a chunk header is padding
            position += BLOCK - position % BLOCK
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            yield Record.FromString(pending)
            pending = b""


def logged_history(run_dir) -> list[dict]:
    rows = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in read_records(path):
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_metrics_equal_metrics_csv_after_a_stop_and_resume(tmp_path, cli_overrides, monkeypatch):
    wandb = pytest.importorskip("wandb", reason='needs wandb: pip install -e ".[wandb]"')

    # Stop the run as a kill would, right after epoch 2's checkpoint and before the tracker logged it.
    log_epoch = Tracker.__call__

    def stop_at_epoch_2(self, row, train_stats):
        if row["epoch"] == 2:
            raise KeyboardInterrupt
        log_epoch(self, row, train_stats)

    monkeypatch.setattr(Tracker, "__call__", stop_at_epoch_2)
    assert train.main(cli_overrides(run_name="wb", **TRACKER, **{"trainer.epochs": 3})) == 130
    monkeypatch.undo()
    wandb.finish()  # what the end of the stopped process would do
    run_dir = tmp_path / "runs" / "wb"
    first = json.loads((run_dir / "wandb_run.json").read_text(encoding="utf-8"))
    assert first["epoch"] == 1
    assert train.main(["--resume", str(run_dir), "tracker.enabled=true"]) == 0

    wandb.teardown()  # the W&B service has written everything
    runs = sorted(run_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and all(path.name.endswith("-" + first["id"]) for path in runs)  # one W&B run, resumed
    rows, logged = read_metrics(run_dir), logged_history(run_dir)
    assert [row["epoch"] for row in logged] == [1, 2, 3]  # epoch 2 logged by the resumed run, once
    assert [row["_step"] for row in logged] == [1, 2, 3]
    for row, want in zip(logged, rows, strict=True):
        for column, value in want.items():
            assert row[column] == pytest.approx(float(value)), column
    assert "train_samples_per_s" in logged[0] and "train_samples_per_s" not in logged[1]  # epoch 2: not known
    files = runs[-1] / "files" / "wb"
    assert (files / "config.yaml").is_file() and (files / "curves.png").is_file()
    assert (files / "eval" / "val" / "report.json").is_file()
    log = (run_dir / "train.log").read_text()
    assert log.count("logged offline") == 2  # once per session, each time it starts


def test_missing_wandb_is_one_warning_and_training_goes_on(tmp_path, cli_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the package were not installed
    assert train.main(cli_overrides(run_name="no_wb", **TRACKER, **{"trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "no_wb"
    warnings = [line for line in (run_dir / "train.log").read_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and 'pip install -e ".[wandb]"' in warnings[0]
    assert (run_dir / "checkpoints" / "last.pt").is_file() and not (run_dir / "wandb").exists()


def test_tracker_disabled_touches_nothing(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="off", **{"tracker.enabled": False})) == 0
    assert not (tmp_path / "runs" / "off" / "wandb").exists()
    assert not (tmp_path / "runs" / "off" / "wandb_run.json").exists()
