"""The evaluation of a job: baseline cached once, contract keys, sparse file, standalone CLI."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch
from omegaconf import OmegaConf

import prunelab.evaluation.core as core
from prunelab.build import build_datamodule, build_net, data_spec
from prunelab.cache import BaselineCache
from prunelab.errors import PrunelabError
from prunelab.evaluate import (
    anchor_paths,
    compose_config,
    data_sizes,
    eval_name,
    format_table,
    job_record,
    load_baseline_state,
    main,
    merge_overrides,
    run_results,
)
from prunelab.evaluation import count_macs, dense_file_bytes, evaluate, load_sparse
from prunelab.evaluation.size import encode_sparse
from prunelab.io import save_torch
from prunelab.pipeline import result_line
from prunelab.pruning import (
    apply_masks,
    global_magnitude_masks,
    measure_removed,
    prunable_weights,
    prune_channels,
)

from conftest import DATA, ROOT, undocumented

# `make test` runs the suite under pytest-xdist: the modules reading the smoke sweep share one
# worker, so that sweep runs once.
pytestmark = pytest.mark.xdist_group("smoke_sweep")

FGSM = ("0.01", "0.03", "0.05", "0.1")
ROBUST = [
    "robust/clean_acc",
    *(f"robust/fgsm_{m}@{e}" for e in FGSM for m in ("acc", "asr")),
    "robust/pgd_acc",
    "robust/pgd_asr",
    *(f"robust/curve_acc@eps{k}" for k in (0, 1, 2, 4, 8, 16)),
]
SUFFIXED = [k + s for k in ROBUST for s in ("", "_baseline", "_delta_pts", "_delta_rel")]
# Accuracies scored image by image also carry the paired interval of their change.
PAIRED = ["test/acc", *(k for k in ROBUST if "_acc" in k)]
SUFFIXED += [k + s for k in PAIRED for s in ("_delta_ci_low", "_delta_ci_high")]
PLAIN = [
    "robust/n_images",
    "test/acc",
    "test/loss",
    "test/acc_ci_low",
    "test/acc_ci_high",
    "test/acc_baseline",
    "test/acc_baseline_ci_low",
    "test/acc_baseline_ci_high",
    "test/acc_retention",
    "test/acc_delta_pts",
    "test/acc_delta_rel",
    *(
        f"latency/{k}{s}"
        for k in ("b1_ms", "b1_p90_ms", "bN_ms", "bN_p90_ms")
        for s in ("", "_baseline")
    ),
    "latency/b1_speedup",
    "latency/bN_speedup",
    "latency/threads",
    "latency/device",
    "latency/fold_batchnorm",
    "size/params",
    "size/nonzero",
    "size/dense_bytes",
    "size/disk_bytes",
    "size/sparse_disk_bytes",
    "size/disk_bytes_baseline",
    "size/reduction_pct",
    "size/params_baseline",
    "size/sparse_disk_bytes_baseline",
    "size/reduction_pct_baseline",
    "robust/pgd_eps",
    "robust/pgd_alpha",
    "robust/pgd_steps",
    "flops/dense_macs",
    "flops/nonzero_macs",
    "flops/theoretical_speedup",
]
EVAL_KEYS = SUFFIXED + PLAIN


# experiment=smoke's evaluation settings, one by one: a checkpoint without a job record is
# evaluated under the default config, where experiment=smoke would also set baseline.* and
# finetune.* (ignored, after a note).
SMALL = ["data.test_size=512", "eval.latency.batch=8", "eval.latency.warmup=1"]
SMALL += ["eval.latency.repeats_b1=5", "eval.latency.repeats_bN=3"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: two threads that wait on each other on a shared machine crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def job(make_cfg):
    cfg = make_cfg("attack.n_images=16", "attack.pgd.steps=2", "attack.curve.steps=1")
    dm = build_datamodule(cfg)
    spec = data_spec(dm)
    torch.manual_seed(0)
    baseline = build_net(cfg.model, spec)
    net = copy.deepcopy(baseline)
    apply_masks(net, global_magnitude_masks(prunable_weights(net), 0.8))
    return cfg, dm, spec, baseline, net


@pytest.fixture
def counted(monkeypatch):
    calls = []
    original = core.model_record

    def model_record(net, *args, **kwargs):
        calls.append(net)
        return original(net, *args, **kwargs)

    monkeypatch.setattr(core, "model_record", model_record)
    return calls


def test_evaluate_gives_every_contract_key_and_evaluates_the_baseline_once(job, counted, tmp_path):
    cfg, dm, spec, baseline, net = job
    cache = BaselineCache(tmp_path / "cache")
    cache.entry("k").mkdir(parents=True)
    first = evaluate(net, baseline, dm, spec, cfg, cache=cache, key="k", sparse_path=tmp_path / "s")
    assert set(EVAL_KEYS) <= set(first), sorted(set(EVAL_KEYS) - set(first))
    assert len(counted) == 2 and list(cache.entry("k").glob("eval-*.json"))
    again = evaluate(
        copy.deepcopy(net), copy.deepcopy(baseline), dm, spec, cfg, cache=cache, key="k"
    )
    assert len(counted) == 3, "the baseline's figures come from the cache the second time"
    for key in ROBUST + ["test/acc", "size/sparse_disk_bytes", "flops/nonzero_macs"]:
        assert again[key] == first[key], key
    for key in ROBUST:
        assert first[f"{key}_baseline"] == again[f"{key}_baseline"]
    back = load_sparse(tmp_path / "s")
    assert all(torch.equal(back[k], v) for k, v in net.state_dict().items())
    assert first["size/sparse_disk_bytes"] == (tmp_path / "s").stat().st_size
    assert first["test/acc_ci_low"] <= first["test/acc"] <= first["test/acc_ci_high"]
    assert first["flops/theoretical_speedup"] > 1
    for key in PAIRED:
        low, high = first[f"{key}_delta_ci_low"], first[f"{key}_delta_ci_high"]
        assert low <= first[f"{key}_delta_pts"] <= high and low < high, key
    json.dumps(first)  # flat and serialisable


def test_a_dense_job_reuses_its_baselines_figures(job, counted):
    cfg, dm, spec, baseline, _ = job
    out = evaluate(copy.deepcopy(baseline), baseline, dm, spec, cfg)
    assert len(counted) == 1
    assert out["robust/pgd_acc_delta_pts"] == 0 and out["test/acc_retention"] == 1
    # The same predictions on every image: a change of 0, its interval a hair either side.
    assert -0.5 < out["test/acc_delta_ci_low"] < 0 < out["test/acc_delta_ci_high"] < 0.5
    assert out["flops/theoretical_speedup"] == pytest.approx(1.0)
    # Its export is measured as every job measures its baseline's: compression alone.
    assert out["size/sparse_disk_bytes_baseline"] == len(encode_sparse(baseline.state_dict()))
    assert out["size/reduction_pct_baseline"] == pytest.approx(out["size/reduction_pct"])
    assert 0 < out["size/reduction_pct_baseline"] < 50


def test_evaluate_without_baseline_gives_the_models_own_figures(job):
    cfg, dm, spec, _, net = job
    out = evaluate(net, None, dm, spec, cfg)
    assert "robust/pgd_acc" in out and "latency/b1_ms" in out and "size/sparse_disk_bytes" in out
    compared = [
        k for k in out if k.endswith(("_baseline", "_delta_pts", "_delta_rel", "_delta_ci_high"))
    ]
    assert not compared and "latency/b1_speedup" not in out
    # No reference to measure the file and MACs against: the net's own could be a shrunk one.
    assert "size/reduction_pct" not in out and "flops/theoretical_speedup" not in out
    dense = build_net(cfg.model, spec)  # the unpruned architecture, fresh weights
    out = evaluate(copy.deepcopy(net), None, dm, spec, cfg, dense=dense)
    assert out["size/reduction_pct"] == pytest.approx(
        100 * (1 - out["size/sparse_disk_bytes"] / dense_file_bytes(dense.state_dict()))
    )
    assert out["flops/theoretical_speedup"] > 1 and "size/disk_bytes_baseline" not in out


def test_table_rows_read_across_against_one_reference():
    """Each size row's change is against the column beside it: the sparse export against the
    baseline's export, the reduction (both columns) against the dense file it names."""
    sizes = {"size/disk_bytes": 400, "size/disk_bytes_baseline": 1000}
    sizes.update({"size/sparse_disk_bytes": 200, "size/sparse_disk_bytes_baseline": 800})
    sizes.update({"size/reduction_pct": 80.0, "size/reduction_pct_baseline": 20.0})
    cells = [re.split(r"\s{2,}", row) for row in format_table(sizes).splitlines()]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["size/sparse_disk_bytes"] == ["200", "800", "-75.0 %"]
    assert rows["size/reduction_pct"] == ["80.0 %", "20.0 %", "vs dense baseline file"]


def test_table_marks_changes_within_noise_and_shows_their_interval():
    """A change whose paired 95 % interval holds 0 is marked `~` (as the report marks it), one
    that excludes 0 is not; the interval shows, and the rows fit a 100-column terminal."""
    results = {"test/acc": 0.55, "test/acc_ci_low": 0.5402, "test/acc_ci_high": 0.5597}
    results.update({"test/acc_baseline": 0.6, "test/acc_baseline_ci_low": 0.5903})
    results.update({"test/acc_baseline_ci_high": 0.6096, "test/acc_delta_pts": -5.0})
    results.update({"test/acc_delta_ci_low": -6.12, "test/acc_delta_ci_high": -3.91})
    results.update({"robust/clean_acc": 0.6, "robust/clean_acc_baseline": 0.555})
    results.update({"robust/clean_acc_delta_pts": 4.5, "robust/clean_acc_delta_rel": 8.1})
    results.update({"robust/clean_acc_delta_ci_low": -1.04, "robust/clean_acc_delta_ci_high": 9.87})
    results.update({"robust/pgd_asr": 0.9, "robust/pgd_asr_baseline": 0.8})
    results.update({"robust/pgd_asr_delta_pts": 10.0, "robust/pgd_asr_delta_rel": 12.5})
    results["flops/nonzero_macs"] = 1_000_000
    results.update({"flops/dense_macs_baseline": 30_000_000, "flops/theoretical_speedup": 30.0})
    results.update(
        {"size/disk_bytes_baseline": 1, "latency/device": "cuda (NVIDIA H100 80GB HBM3)"}
    )
    table = format_table(results)
    rows = {row.split("  ")[0]: row for row in table.splitlines()}
    assert rows["robust/clean_acc"].endswith("+4.50 pts (+8.1 %) [-1.04, +9.87] ~")
    assert rows["test/acc"].endswith("-5.00 pts (-8.3 %) [-6.12, -3.91]")  # beyond noise
    assert rows["robust/pgd_asr"].endswith("+10.00 pts (+12.5 %)")  # no interval: no verdict
    assert "0.5402-0.5597  0.5903-0.6096" in table  # the Wilson intervals, on a row of their own
    assert table.splitlines()[-1].startswith("change [low, high]: paired 95 % interval")
    assert "~ = within noise" in table.splitlines()[-1]
    assert max(len(line) for line in table.splitlines()) <= 100, table
    assert "paired 95 %" not in format_table({"size/params": 5})  # no interval, no legend
    alone = format_table({"size/params": 5, "test/acc": 0.5})  # baseline=none: two columns
    assert alone.splitlines()[0].split() == ["metric", "model"] and "baseline" not in alone


def test_job_headline_names_the_attack_subset():
    """PGD accuracy is on the attack subset: the headline says so, with the clean accuracy
    there, so a PGD figure above the full test split's accuracy does not read like a bug."""
    results = {"test/acc": 0.107, "test/acc_baseline": 0.537, "robust/pgd_acc": 0.172}
    results.update({"robust/pgd_acc_baseline": 0.203, "robust/n_images": 64})
    results.update({"robust/clean_acc": 0.172, "size/reduction_pct": 80.4})
    assert result_line(results) == (
        "test/acc 10.7 % (dense 53.7 %); PGD acc 17.2 % (dense 20.3 %) on 64 attack-subset "
        "images (clean 17.2 % on them); file 80.4 % smaller"
    )


def test_closing_line_says_which_models_were_attacked(make_cfg, tmp_path, capsys):
    """A baseline evaluation read from the cache costs no attack steps: the count of the run
    that reads it is this model's alone, and the closing line says so."""
    cfg = make_cfg()
    spec = data_spec(build_datamodule(cfg))
    torch.manual_seed(4)  # untrained nets that each get a few of the 32 images right
    dense = build_net(cfg.model, spec)
    pruned = copy.deepcopy(dense)
    apply_masks(pruned, global_magnitude_masks(prunable_weights(pruned), 0.5))
    key = "simplecnn-seed0-abc"
    save_torch(tmp_path / "cache" / key / "model.pt", dense.state_dict())
    job = save_job(tmp_path / "job", pruned, cfg, spec, 0.5, key)
    # attack.cascade=false: PGD runs its steps on every image either model gets right, so
    # even these untrained nets cost steps (the cascade stops where FGSM already flipped one).
    fast = ["attack.n_images=32", "attack.pgd.steps=2", "attack.curve.eps_255=[]", *SMALL]
    args = [f"paths.data_dir={DATA}", f"paths.cache_dir={tmp_path / 'cache'}", *fast]
    args.append("attack.cascade=false")

    def closing(ckpt) -> tuple[int, str]:
        assert main([f"ckpt={ckpt}", *args]) == 0
        last = capsys.readouterr().out.strip().splitlines()[-1]
        found = re.search(r", ([\d,]+) attack steps: (.*)\)$", last)
        assert found, last
        return int(found[1].replace(",", "")), found[2]

    both, who = closing(job)
    assert who == "this model and its baseline" and both > 0
    alone, who = closing(job)
    assert who == "this model; the baseline's from the cache"
    assert 0 < alone < both
    dense_job = save_job(tmp_path / "dense", dense, cfg, spec, 0.0, key)
    steps, who = closing(dense_job)  # the sparsity-0 job: its baseline's cached figures
    assert (steps, who) == (
        0,
        "none: this model is its baseline, whose figures came from the cache",
    )


def test_training_sizes_come_from_the_run_that_saved_the_model(tmp_path):
    """A model.<hash>.pt set aside by a rerun of other settings has its own results.<hash>.json:
    the current run's results.json may have trained on another number of images."""
    (tmp_path / "results.json").write_text('{"data/train_size": 256, "data/val_size": 128}')
    tag = "0123456789ab"  # a config hash, as set_aside tags files
    (tmp_path / f"results.{tag}.json").write_text('{"data/train_size": 4000, "data/val_size": 1}')

    def sizes(name: str) -> dict:
        return data_sizes(run_results(tmp_path / name), 9)

    assert sizes("model.pt")["data/train_size"] == 256
    assert sizes(f"model.{tag}.pt") == {
        "data/train_size": 4000,
        "data/val_size": 1,
        "data/test_size": 9,
    }
    assert sizes("model.fedcba987654.pt") == {"data/test_size": 9}
    assert sizes("model.best.pt") == {"data/test_size": 9}  # one's own


def test_every_checkpoint_name_in_a_folder_gets_its_own_eval_file():
    """best.pt and model.best.pt both wrote eval.best.json, one overwriting the other's
    figures; old.pt would have taken the set-aside model.old.pt's eval.old.json."""
    names = [
        "model.pt",
        "model.0123456789ab.pt",  # set aside by a rerun, beside eval.0123456789ab.json
        "model.old.pt",
        "model.best.pt",
        "best.pt",
        "old.pt",
        "0123456789ab.pt",
        "pruned-80.pt",
        "copied.model.pt",
        "best.ckpt",
    ]
    files = [eval_name(n) for n in names]
    assert len(set(files)) == len(files), files
    assert files[:5] == [
        "eval.json",
        "eval.0123456789ab.json",
        "eval.old.json",
        "eval.model.best.json",
        "eval.best.json",
    ]
    assert eval_name("pruned-80.pt") == "eval.pruned-80.json"  # README's example


def test_merge_overrides_lets_the_command_line_win():
    merged = merge_overrides(["experiment=smoke", "attack.n_images=64"], ["attack.n_images=8"])
    assert merged == ["experiment=smoke", "attack.n_images=8"]


def test_standalone_cli_on_a_sweep_job(smoke_sweep, capsys, tmp_path):
    job = next(p.parent for p in sorted(smoke_sweep.glob("resnetsmall-*-s0.8-*/model.pt")))
    before = (job / "results.json").read_bytes()
    # The job's own experiment again changes nothing evaluate ignores: accepted. Its data
    # sizes are the job's, whatever this command's data.train_size says.
    args = ["attack.n_images=16", "experiment=smoke", "data.train_size=100"]
    args.append("attack.targeted_class=1")  # its keys in eval.json, against the baseline's
    assert main([f"ckpt={job / 'model.pt'}", *args]) == 0
    printed = capsys.readouterr().out
    assert "metric" in printed and "robust/pgd_acc" in printed and "pts" in printed
    result = json.loads((job / "eval.json").read_text())
    assert set(EVAL_KEYS) <= set(result), sorted(set(EVAL_KEYS) - set(result))
    assert result["robust/n_images"] == 16 and result["sparsity"] == 0.8
    assert "robust/pgd_targeted_acc_delta_ci_low" in result
    assert not undocumented(result)
    assert result["data/train_size"] == json.loads(before)["data/train_size"] == 256
    assert (job / "results.json").read_bytes() == before
    assert format_table(result).count("\n") > 20
    # The job's identity and measured sparsity, so eval.json can be matched to its method.
    recorded = json.loads(before)
    keys = ("pruning", "prune/sparsity_target", "prune/sparsity_measured", "prune/sparsity_overall")
    for key in keys:
        assert result[key] == recorded[key], key

    # Another architecture's weights as the baseline (a state_dict file): one line.
    other = next(iter(sorted(smoke_sweep.glob("simplecnn-*/model.pt"))))
    save_torch(tmp_path / "other.pt", torch.load(other, weights_only=True)["state_dict"])
    assert main([f"ckpt={job / 'model.pt'}", f"baseline={tmp_path / 'other.pt'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunelab: error: the baseline does not fit") and "\n" not in err
    save_torch(tmp_path / "list.pt", [1, 2, 3])  # a torch file, but no weights
    assert main([f"ckpt={job / 'model.pt'}", f"baseline={tmp_path / 'list.pt'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "list.pt holds a list, not a model's weights" in err and "\n" not in err
    # The job's checks run here too, before any attack: a bad device with the command line's
    # (exit 2, as train.py's since 310047a).
    with pytest.raises(SystemExit) as stop:
        main([f"ckpt={job}", "eval.device=gpu"])
    err = capsys.readouterr().err.strip()
    assert err == "prunelab: error: eval.device must be auto, cpu, cuda or cuda:N, got 'gpu'"
    assert stop.value.code == 2


def test_standalone_cli_on_a_structured_model_reports_what_was_removed(make_cfg, tmp_path, capsys):
    """eval.json's prune keys mean what results.json's do: the share of the dense weights
    gone, not the zeros of the shrunk net (it has none)."""
    cfg = make_cfg("pruning=structured", "sparsity=0.5")
    spec = data_spec(build_datamodule(cfg))
    torch.manual_seed(0)
    net = prune_channels(build_net(cfg.model, spec), 0.5, spec["in_shape"])
    job = tmp_path / "structured-job"
    meta = {"model": "simplecnn", "data": "fashion_mnist", "pruning": "structured"}
    meta.update({"sparsity": 0.5, "seed": 0, "baseline/key": None})
    model = OmegaConf.to_container(cfg.model, resolve=True)
    saved = {"state_dict": net.state_dict(), "masks": None, "model": model}
    save_torch(job / "model.pt", {**saved, "data": spec, "meta": meta})
    fast = ["attack.n_images=8", "attack.pgd.steps=1", "attack.curve.eps_255=[]", *SMALL]
    args = [f"paths.data_dir={DATA}", *fast, "baseline=none", "attack.targeted_class=1"]
    assert main([f"ckpt={job / 'model.pt'}", *args]) == 0
    result = json.loads((job / "eval.json").read_text())
    # Without a baseline: the structured and targeted keys alone, every one documented.
    assert "prune/channels_removed" in result and "robust/pgd_targeted_asr" in result
    assert not undocumented(result)
    # A model.pt alone, no job record beside it: the defaults, said once.
    notes = [line for line in capsys.readouterr().out.splitlines() if "job record" in line]
    assert notes == [
        f"note: no job record (command.json, .hydra/) beside {job / 'model.pt'}; evaluating "
        "under the default config with data=fashion_mnist (pass the job's settings on the "
        "command line)"
    ]
    # No results.json: what it trained on is unknown, not this command's data.train_size.
    assert "data/train_size" not in result and result["data/test_size"] == 512
    dense = build_net(cfg.model, spec)
    removed = measure_removed(net, dense, spec["in_shape"])
    # Without a baseline, file and MACs are measured against the unpruned architecture, not
    # the shrunk net's own dense file (-11 %) and MACs (x1.00), and the table says so.
    sparse, dense_bytes = result["size/sparse_disk_bytes"], dense_file_bytes(dense.state_dict())
    assert result["size/reduction_pct"] == pytest.approx(100 * (1 - sparse / dense_bytes))
    assert result["size/reduction_pct"] > 70 and "size/disk_bytes_baseline" not in result
    macs = count_macs(dense, spec["in_shape"])["flops/dense_macs"]
    assert result["flops/theoretical_speedup"] == pytest.approx(macs / result["flops/nonzero_macs"])
    table = format_table(result)
    assert "vs dense architecture" in table and "baseline file" not in table
    assert result["prune/sparsity_measured"] > 0.5  # ~75 % of the weights; 0 zeros counted
    expected = {"prune/sparsity_target": 0.5, "prune/channel_ratio": 0.5, **removed}
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


def save_job(folder, net, cfg, spec, sparsity: float, key: str | None):
    """A job folder holding `net` as its model.pt, with the meta a job writes."""
    meta = {"model": "simplecnn", "data": "fashion_mnist", "pruning": "magnitude"}
    meta.update({"sparsity": sparsity, "seed": 0, "baseline/key": key})
    model = OmegaConf.to_container(cfg.model, resolve=True)
    saved = {"state_dict": net.state_dict(), "masks": None, "model": model, "data": spec}
    save_torch(folder / "model.pt", {**saved, "meta": meta})
    return folder


def test_a_baseline_other_than_the_checkpoints_dense_model_is_refused(make_cfg, tmp_path, capsys):
    """The pruned job itself, or the dense model of another baseline (seed, recipe), fits the
    architecture but is not the reference: one line, before any data loads."""
    cfg = make_cfg()
    spec = data_spec(build_datamodule(cfg))
    torch.manual_seed(0)
    dense = build_net(cfg.model, spec)
    pruned = copy.deepcopy(dense)
    apply_masks(pruned, global_magnitude_masks(prunable_weights(pruned), 0.5))
    job = save_job(tmp_path / "job", pruned, cfg, spec, 0.5, "simplecnn-seed0-abc")
    other = save_job(tmp_path / "seed1", dense, cfg, spec, 0.0, "simplecnn-seed1-abc")
    refused = {
        job: "is not dense (its sparsity is 0.5)",
        other: "is the dense model of simplecnn-seed1-abc, not of the checkpoint's baseline "
        "simplecnn-seed0-abc; pass the sparsity-0 job of the same seed and config",
    }
    for baseline, says in refused.items():
        assert main([f"ckpt={job}", f"baseline={baseline}", f"paths.data_dir={DATA}"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"prunelab: error: the baseline {baseline / 'model.pt'} {says}")
        assert "\n" not in err
    # A cache entry's rewind point (epoch0.pt: the untrained net) loads as a state_dict too.
    entry = tmp_path / "cache" / "simplecnn-seed0-abc"
    save_torch(entry / "rewind" / "epoch0.pt", dense.state_dict())
    (entry / "meta.json").write_text("{}")
    assert main([f"ckpt={job}", f"baseline={entry / 'rewind' / 'epoch0.pt'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is a rewind point of the dense training" in err and "\n" not in err
    assert err.endswith(f"not the trained dense model; pass {entry / 'model.pt'}")
    # Its own dense model (or a state_dict, which says nothing of itself) is taken.
    mine = save_job(tmp_path / "seed0", dense, cfg, spec, 0.0, "simplecnn-seed0-abc")
    save_torch(tmp_path / "plain.pt", dense.state_dict())
    saved = torch.load(job / "model.pt", weights_only=True)
    for given in (mine, tmp_path / "plain.pt"):
        state, _, _ = load_baseline_state(str(given), saved, cfg)
        assert all(torch.equal(state[k], v) for k, v in dense.state_dict().items())


def test_standalone_cli_errors_are_one_line(tmp_path, capsys):
    assert main([f"ckpt={tmp_path / 'missing.pt'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunelab: error: no checkpoint at") and "\n" not in err
    assert main([f"ckpt={tmp_path / 'missing.pt'}", f"out={tmp_path}"]) == 1  # before loading
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"prunelab: error: out={tmp_path} is a folder; name the file")
    # out= naming a job's own record or model, or given twice: refused before anything runs.
    job = tmp_path / "j"
    for out, says in (
        (job / "results.json", f"out={job / 'results.json'} would overwrite a job's own results"),
        (job / "config.1a2b.json", "would overwrite a job's own config.1a2b.json"),
        (job / "model.pt", f"out={job / 'model.pt'} is not a .json file"),
    ):
        assert main([f"ckpt={job}", f"out={out}"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("prunelab: error: ") and says in err and "\n" not in err, err
    for twice in (["ckpt=a.pt", "ckpt=b.pt"], ["ckpt=a.pt", "out=x.json", "out=y.json"]):
        assert main(twice) == 2
        assert "is given twice; give it once" in capsys.readouterr().err
    assert main(["ckpt=a.pt", "baseline="]) == 2
    assert "baseline= is empty" in capsys.readouterr().err
    assert main(["attack.n_images=3"]) == 2  # a malformed command line, as argparse's status
    err = capsys.readouterr().err
    assert "usage" in err and "a path goes after" not in err
    assert main([str(job), "attack.n_images=3"]) == 2  # the path without ckpt=: say where it goes
    assert capsys.readouterr().err.strip().endswith(f"(a path goes after ckpt=: ckpt={job})")
    with pytest.raises(SystemExit) as stop:
        main([f"ckpt={tmp_path / 'missing.pt'}", "attack.n_images=[3"])
    assert stop.value.code == 2 and "attack.n_images" in capsys.readouterr().err
    assert main([f"ckpt={tmp_path / 'job' / 'model.sparse'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is the size export" in err and "\n" not in err
    assert main([f"ckpt={tmp_path}"]) == 1  # a folder: its model.pt, here missing
    assert f"no checkpoint at {tmp_path / 'model.pt'}" in capsys.readouterr().err
    (tmp_path / "FAILED").write_text("prunelab: error: loss became nan at epoch 0, step 3\n")
    assert main([f"ckpt={tmp_path}"]) == 1  # a failed job: why it has no model
    err = capsys.readouterr().err.strip()
    assert err.endswith("(the job failed: error: loss became nan at epoch 0, step 3)")
    (tmp_path / "FAILED").unlink()
    (tmp_path / "a-job").mkdir()
    (tmp_path / "a-job" / "model.pt").write_bytes(b"")
    assert main([f"ckpt={tmp_path}"]) == 1  # a sweep folder: the job to name
    err = capsys.readouterr().err.strip()
    assert f"is a sweep folder: name one of its 1 jobs (ckpt={tmp_path / 'a-job'})" in err
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("Evaluate a saved job model on its own")


def test_evaluating_from_another_folder_finds_the_jobs_relative_data(tmp_path, monkeypatch):
    """`paths.data_dir: data` is the data of the folder train.py ran in, not of today's cwd."""
    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- sparsity=0.5\n- hydra.run.dir=x\n")
    (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {ROOT}\n")
    assert job_record(job / "model.pt") == ((["sparsity=0.5"], str(ROOT), ".hydra"), None)
    # A damaged command.json is passed over for .hydra/, and the evaluation says so.
    (job / "command.json").write_text('{"overrides": ["sparsity=0.8"')
    record, problem = job_record(job / "model.pt")
    assert record == (["sparsity=0.5"], str(ROOT), ".hydra")
    assert str(problem).startswith(f"{job / 'command.json'} cannot be read (")
    (job / "command.json").write_text('{"overrides": "sparsity=0.8"}')
    problem = job_record(job / "model.pt")[1]
    assert problem == f"{job / 'command.json'} holds no list of overrides"
    (job / "command.json").unlink()
    (job / ".hydra" / "hydra.yaml").write_text("hydra: [\n")  # damaged: one line naming it
    with pytest.raises(PrunelabError, match=r"cannot read the job's record .*hydra\.yaml \("):
        job_record(job / "model.pt")
    (job / ".hydra" / "overrides.yaml").write_text("sparsity: 0.5\n")
    with pytest.raises(PrunelabError, match=r"overrides\.yaml is no list of overrides"):
        job_record(job / "model.pt")
    job = str(ROOT)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = compose_config([])
    assert cfg.paths.data_dir == "data"
    anchor_paths(cfg, job, [])
    assert cfg.paths.data_dir == str(ROOT / "data") and cfg.data.root == str(ROOT / "data")
    # A folder named on the command line is the user's choice; one the job's folder lacks stays.
    cfg = compose_config(["paths.data_dir=mine", "paths.cache_dir=nowhere"])
    anchor_paths(cfg, job, ["paths.data_dir=mine"])
    assert cfg.paths.data_dir == "mine" and cfg.paths.cache_dir == "nowhere"


def test_evaluating_from_another_folder_finds_the_jobs_relative_image_folder(tmp_path, monkeypatch):
    """`data.root=images` of an image-folder job is the folder beside where train.py ran."""
    ran_here = tmp_path / "ran_here"
    (ran_here / "images").mkdir(parents=True)
    job = str(ran_here)
    monkeypatch.chdir(tmp_path)
    overrides = ["data=imagefolder", "data.root=images"]
    cfg = compose_config(overrides)
    anchor_paths(cfg, job, [])
    assert cfg.data.root == str(ran_here / "images")
    cfg = compose_config(overrides)  # given on this command line: as given
    anchor_paths(cfg, job, ["data.root=images"])
    assert cfg.data.root == "images"


@pytest.mark.parametrize("record", ["results", "command"])
def test_a_model_copied_into_another_jobs_folder_is_not_given_that_jobs_record(
    make_cfg, tmp_path, capsys, record
):
    """A SimpleCNN model.pt copied as other.pt into a ResNetSmall job's folder: that job's
    command.json is another run's (its settings, its attack, its data sizes). Found from
    the folder's results.json, or without one from the command's own cell overrides."""
    cfg = make_cfg()
    spec = data_spec(build_datamodule(cfg))
    job = tmp_path / "resnetsmall-job"
    save_job(job, build_net(cfg.model, spec), cfg, spec, 0.0, None)
    (job / "model.pt").rename(job / "other.pt")
    theirs = ["model=resnetsmall", "sparsity=0.8", "attack.n_images=999"]
    (job / "command.json").write_text(json.dumps({"overrides": theirs, "cwd": str(ROOT)}))
    if record == "results":
        cells = {"model": "resnetsmall", "data": "fashion_mnist", "pruning": "magnitude"}
        cells.update({"sparsity": 0.8, "seed": 0, "data/train_size": 77})
        (job / "results.json").write_text(json.dumps(cells))
    fast = ["attack.n_images=8", "attack.pgd.steps=1", "attack.curve.eps_255=[]", *SMALL]
    args = [f"paths.data_dir={DATA}", *fast, "baseline=none"]
    assert main([f"ckpt={job / 'other.pt'}", *args]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "job record" in line]
    source = "command.json"
    assert notes == [
        f"note: the job record beside {job / 'other.pt'} ({source}) is another run's "
        "(model=resnetsmall against the checkpoint's simplecnn, sparsity=0.8 against the "
        "checkpoint's 0.0); evaluating under the default config with data=fashion_mnist "
        "(pass the job's settings on the command line)"
    ]
    result = json.loads((job / "eval.other.json").read_text())
    assert result["model"] == "simplecnn" and result["robust/n_images"] == 8
    assert "data/train_size" not in result  # not the other run's 77


def test_table_shows_a_change_that_rounds_to_zero_without_a_sign():
    """-0.001 points prints as 0.00, not -0.00: the shown digits carry no direction."""
    results = {"robust/pgd_acc": 0.5, "robust/pgd_acc_baseline": 0.5}
    results.update({"robust/pgd_acc_delta_pts": -0.001, "robust/pgd_acc_delta_rel": -0.002})
    results.update({"robust/pgd_acc_delta_ci_low": -0.003, "robust/pgd_acc_delta_ci_high": 1.2})
    row = next(r for r in format_table(results).splitlines() if r.startswith("robust/pgd_acc"))
    assert row.endswith("0.00 pts (0.0 %) [0.00, +1.20] ~") and "-0.0" not in row, row


def test_a_missing_cache_entry_names_the_sweeps_dense_job_as_the_baseline(tmp_path, capsys):
    """The cache was cleared or lives elsewhere: the dense job of the same baseline beside the
    checkpoint is the baseline to pass, and the note says so."""
    key = "simplecnn-fashionmnist-seed0-abc"
    sweep = tmp_path / "sweep"
    for name, sparsity in (("dense", 0), ("other", 0), ("pruned", 0.5)):
        (sweep / name).mkdir(parents=True)
        other = name == "other"  # the dense job of another baseline (another seed)
        found = {"sparsity": sparsity, "baseline/key": key + ("x" if other else "")}
        (sweep / name / "results.json").write_text(json.dumps(found))
        (sweep / name / "model.pt").write_bytes(b"")
    cfg = OmegaConf.create({"paths": {"cache_dir": str(tmp_path / "cache")}})
    saved = {"meta": {"baseline/key": key}}
    assert load_baseline_state(None, saved, cfg, sweep / "pruned" / "model.pt") == (None,) * 3
    assert f"(pass baseline={sweep / 'dense'}, its sweep's dense job)" in capsys.readouterr().out
    (sweep / "dense" / "model.pt").unlink()  # a dense job without its model: not offered
    load_baseline_state(None, saved, cfg, sweep / "pruned" / "model.pt")
    assert "(pass baseline=PATH)" in capsys.readouterr().out
