"""Under torchrun only rank 0 tracks: it creates the tracker, logs each epoch once and finishes it."""

from conftest import fast_overrides
from test_distributed import explain, torchrun
from tiny_data import write_tiny_sample

# train.py's Tracker replaced by one that writes what it is asked, per rank, to the working directory (shared by
# both ranks); the tracker itself is tested in one process (test_tracker.py).
RECORDING_TRACKER = """
class Tracker:
    def __init__(self, *args):
        self.record("created")
    def record(self, line):
        with open(f"tracker-rank-{rank}", "a") as file:
            file.write(line + chr(10))
    def __call__(self, row, train_stats):
        self.record(f"epoch {row['epoch']}")
    def finish(self):
        self.record("finished")
train.Tracker = Tracker
"""


def test_only_rank_0_tracks(tmp_path):
    overrides = fast_overrides(tmp_path, write_tiny_sample(tmp_path / "data"), **{"trainer.epochs": 2})
    proc = torchrun(tmp_path, *overrides, "run_name=tracked", patch=RECORDING_TRACKER)
    assert proc.returncode == 0, explain(proc)
    assert sorted(path.name for path in tmp_path.glob("tracker-rank-*")) == ["tracker-rank-0"]
    assert (tmp_path / "tracker-rank-0").read_text().split("\n") == ["created", "epoch 1", "epoch 2", "finished", ""]
