"""Multi-label reports: every number against scikit-learn (imbalanced labels, one without positives), validation's
histograms (AP on the binned scores, the thresholds that maximise F1), the files, and evaluate.py applying the
checkpoint's thresholds on test."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import evaluate
from {{ cookiecutter.package_name }} import engine
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.task import BINS, RunningSums, build_report, epoch_row, histograms, write_report

NEEDS_SKLEARN = 'needs scikit-learn: pip install -e ".[dev]"'  # the independent reference
LABELS = ["common", "rare", "never", "half"]
RATES = [0.6, 0.08, 0.0, 0.35]  # imbalanced; "never" has no positives: its AP is undefined
THRESHOLDS = [0.3, 0.62, 0.5, 0.451]


def metrics():
    return pytest.importorskip("sklearn.metrics", reason=NEEDS_SKLEARN)


def info_of(thresholds=THRESHOLDS) -> dict:
    info = {"labels": LABELS, "num_outputs": len(LABELS), "label_separator": ";"}
    return info | ({"thresholds": list(thresholds)} if thresholds else {})


def random_scores(count: int, seed: int, decimals: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, 0/1 targets): each label's positives score higher on average, by a different margin; `decimals`
    rounds the scores (ties)."""
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(count, len(LABELS), generator=generator) < torch.tensor(RATES)).float()
    logits = torch.randn(count, len(LABELS), generator=generator) + target * torch.tensor([1.5, 2.5, 0.0, 0.7])
    scores = logits.sigmoid()
    return (scores if decimals is None else (scores * 10**decimals).round() / 10**decimals), target


def outputs_of(scores: torch.Tensor, target: torch.Tensor, index=None) -> dict:
    n = len(target)
    index = torch.arange(n) if index is None else index
    return {
        "index": index,
        "target": target,
        "output": scores,
        "loss_sum": 0.25 * target.numel(),
        "weight_sum": target.numel(),
    }


def read_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("decimals", [None, 2], ids=["distinct", "ties"])
def test_every_number_equals_scikit_learn(decimals):
    sk = metrics()
    scores, target = random_scores(400, seed=1, decimals=decimals)
    report = build_report(outputs_of(scores, target), info_of())
    y, s = target.numpy().astype(int), scores.double().numpy()
    predicted = (s >= np.array(THRESHOLDS)).astype(int)
    aps = [sk.average_precision_score(y[:, j], s[:, j]) if y[:, j].any() else None for j in range(len(LABELS))]
    assert report["map"] == pytest.approx(np.mean([ap for ap in aps if ap is not None]), rel=1e-9)
    assert report["micro_f1"] == pytest.approx(sk.f1_score(y, predicted, average="micro", zero_division=0), rel=1e-9)
    assert report["macro_f1"] == pytest.approx(sk.f1_score(y, predicted, average="macro", zero_division=0), rel=1e-9)
    precision, recall, f1, support = sk.precision_recall_fscore_support(y, predicted, zero_division=0)
    for j, name in enumerate(LABELS):
        scores_j = report["per_label"][name]
        assert scores_j["precision"] == pytest.approx(precision[j], rel=1e-9)
        assert scores_j["recall"] == pytest.approx(recall[j], rel=1e-9)
        assert scores_j["f1"] == pytest.approx(f1[j], rel=1e-9)
        assert scores_j["support"] == support[j] and scores_j["threshold"] == THRESHOLDS[j]
        assert scores_j["ap"] == (None if aps[j] is None else pytest.approx(aps[j], rel=1e-9)), name
    assert report["per_label"]["never"]["ap"] is None and report["per_label"]["rare"]["support"] < 0.15 * 400
    assert report["num_samples"] == 400 and report["loss"] == 0.25 and report["thresholds"] == THRESHOLDS


def test_histogram_ap_is_scikit_learns_on_the_binned_scores_and_shards_add_up():
    sk = metrics()
    scores, target = random_scores(300, seed=2)
    logits = scores.logit()
    whole, shards = RunningSums.for_validation(torch.device("cpu"), info_of()), []
    for part in torch.arange(300).split(70):  # a short last batch
        whole.add(torch.tensor(0.5), logits[part], target[part])
    for rank in range(2):  # two ranks' shards, summed as the engine all-reduces them
        shard = RunningSums(torch.device("cpu"))
        shard.add(torch.tensor(0.5), logits[rank::2], target[rank::2])
        shards.append(shard)
    summed = RunningSums(torch.device("cpu")).restored(
        {k: shards[0].totals()[k] + shards[1].totals()[k] for k in whole.totals()}
    )
    assert all(torch.equal(summed.totals()[k], whole.totals()[k]) for k in whole.totals())
    result = whole.result("evaluation")
    binned = np.floor(logits.sigmoid().double().numpy() * BINS)  # the bins' scores, by hand
    y = target.numpy().astype(int)
    for j, name in enumerate(LABELS):
        if y[:, j].any():
            assert result["ap"][j].item() == pytest.approx(sk.average_precision_score(y[:, j], binned[:, j]), rel=1e-9)
        else:
            assert result["ap"][j].isnan(), name  # undefined, not 0
    defined = [sk.average_precision_score(y[:, j], binned[:, j]) for j in range(len(LABELS)) if y[:, j].any()]
    assert result["map"] == pytest.approx(np.mean(defined), rel=1e-9)  # the mean over labels with positives
    assert histograms(scores, target).sum().item() == scores.numel()


def test_validation_thresholds_maximise_f1_the_lower_on_ties():
    sk = metrics()
    scores, target = random_scores(250, seed=3)
    sums = RunningSums.for_validation(torch.device("cpu"), info_of())
    sums.add(torch.tensor(0.5), scores.logit(), target)
    result = sums.result("evaluation")
    y, s = target.numpy().astype(int), scores.double().numpy()
    candidates = np.arange(BINS) / BINS
    for j, name in enumerate(LABELS):
        if not y[:, j].any():
            assert result["thresholds"][j] == 0.5, name
            continue
        f1 = np.array([sk.f1_score(y[:, j], s[:, j] >= t, zero_division=0) for t in candidates])
        best = candidates[np.flatnonzero(f1 == f1.max())[0]]  # brute force: the lowest of the best
        assert result["thresholds"][j] == pytest.approx(best, abs=1e-12), name
    predicted = s >= np.array(result["thresholds"])
    assert result["micro_f1"] == pytest.approx(sk.f1_score(y, predicted, average="micro", zero_division=0), rel=1e-9)
    assert result["macro_f1"] == pytest.approx(sk.f1_score(y, predicted, average="macro", zero_division=0), rel=1e-9)
    info = info_of(None)
    row = epoch_row(result, result, info)  # validation's thresholds go into data_info, for the checkpoints
    assert info["thresholds"] == result["thresholds"] and row["val_map"] == result["map"]


def test_validation_sums_equal_the_report_at_validations_thresholds(make_config):
    scores, target = random_scores(60, seed=4)
    inputs = torch.cat([scores.logit(), torch.randn(60, 2)], 1)
    model = torch.nn.Linear(6, 4)
    with torch.no_grad():
        model.weight.copy_(torch.cat([torch.eye(4), torch.zeros(4, 2)], 1) * 0.9)
    criterion = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(inputs, target), batch_size=7)
    val = engine.evaluate(model, criterion, loader, torch.device("cpu"), make_config(), info_of())
    with torch.no_grad():
        logits = model(inputs)
    outputs = outputs_of(logits.sigmoid(), target) | {
        "loss_sum": criterion(logits, target).item() * 240,
        "weight_sum": 240,
    }
    report = build_report(outputs, info_of(val["thresholds"]))
    assert val["loss"] == pytest.approx(report["loss"], rel=1e-6)
    assert val["micro_f1"] == pytest.approx(report["micro_f1"], rel=1e-9)
    assert val["macro_f1"] == pytest.approx(report["macro_f1"], rel=1e-9)


def test_report_files(data_root, make_config, tmp_path):
    from {{ cookiecutter.package_name }}.data import build_datasets

    _, val_set, data_info = build_datasets(make_config())
    names = data_info["labels"]
    thresholds = [0.2, 0.8, 0.5, 0.35, 0.65][: len(names)]
    data_info = {**data_info, "thresholds": thresholds}
    index = torch.randperm(len(val_set), generator=torch.Generator().manual_seed(0))  # not in file order
    scores = torch.rand(len(val_set), len(names), generator=torch.Generator().manual_seed(1))
    outputs = outputs_of(scores, val_set.labels[index], index)
    report = build_report(outputs, data_info)
    write_report(report, outputs, val_set, data_info, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_label.csv", "predictions.csv", "report.json"]
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report
    records = read_rows(data_root / "val.csv")
    rows = read_rows(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["index", "source", "id", "target", "prediction", *(f"p_{n}" for n in names)]
    for row, i, p in zip(rows, index.tolist(), scores.tolist(), strict=True):
        assert row["source"] == f"val.csv:{i + 2}" and row["id"] == records[i]["id"]
        assert sorted(filter(None, row["target"].split(";"))) == sorted(filter(None, records[i]["tags"].split(";")))
        assert row["prediction"] == ";".join(n for n, v, t in zip(names, p, thresholds, strict=True) if v >= t)
        assert [float(row[f"p_{n}"]) for n in names] == pytest.approx(p, abs=1e-6)
    per_label = read_rows(tmp_path / "per_label.csv")
    assert [row["label"] for row in per_label] == names
    for row in per_label:
        scores_j = report["per_label"][row["label"]]
        assert float(row["f1"]) == pytest.approx(scores_j["f1"]) and int(row["support"]) == scores_j["support"]


def test_evaluate_applies_the_checkpoints_thresholds_and_never_tunes_on_test(trained_run, data_root, tmp_path, capsys):
    sk = metrics()
    run = shutil.copytree(trained_run, tmp_path / "run")  # evaluate.py writes eval/: the shared run stays
    root = shutil.copytree(data_root, tmp_path / "data")
    shutil.copy(root / "train.csv", root / "test.csv")  # other rows than val's: other best thresholds
    best = run / "checkpoints" / "best.pt"
    saved = load_checkpoint(best)["data_info"]["thresholds"]
    capsys.readouterr()
    assert evaluate.main([str(best), "--split", "test", f"data.root={root}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["thresholds"] == saved  # val's, from the checkpoint
    rows = read_rows(run / "eval" / "test" / "predictions.csv")
    names = list(result["per_label"])
    y = np.array([[n in row["target"].split(";") for n in names] for row in rows], dtype=int)
    s = np.array([[float(row[f"p_{n}"]) for n in names] for row in rows])
    predicted = s >= np.array(saved)
    assert result["micro_f1"] == pytest.approx(sk.f1_score(y, predicted, average="micro", zero_division=0), abs=1e-9)
    # Tuned on test, the thresholds would differ: for some label another threshold scores a higher F1 there.
    sums = RunningSums(torch.device("cpu"))
    sums.add(torch.tensor(0.0), torch.tensor(s).float().logit(), torch.tensor(y).float())
    assert sums.result("test")["thresholds"] != saved
