"""The baseline cache: content-addressed keys, train-once, atomic publish, corrupt-entry rebuild."""

import torch

from prunelab.cache import BaselineCache, baseline_key, baseline_key_material


def test_key_ignores_sparsity_and_paths_but_not_recipe(make_cfg, tmp_path):
    base = baseline_key(make_cfg("sparsity=0.2"))
    assert baseline_key(make_cfg("sparsity=0.8")) == base
    assert baseline_key(make_cfg("pruning=magnitude", "data.num_workers=1")) == base
    assert baseline_key(make_cfg("paths.data_dir=/elsewhere")) == base
    assert baseline_key(make_cfg("baseline.optimizer.lr=0.01")) != base
    assert baseline_key(make_cfg("seed=1")) != base
    assert baseline_key(make_cfg("model=resnetsmall")) != base
    assert baseline_key(make_cfg("data.train_size=100")) != base
    assert baseline_key(make_cfg("trainer.precision=bf16-mixed")) != base
    assert baseline_key(make_cfg("+trainer.gradient_clip_val=1.0")) != base
    assert baseline_key(make_cfg("trainer.enable_progress_bar=false")) == base
    assert baseline_key(make_cfg("trainer.profiler=simple")) == base
    assert base.startswith("simplecnn-fashionmnist-seed0-")


def test_accelerator_naming_the_device_auto_picks_is_auto(make_cfg, monkeypatch):
    from prunelab.identity import job_config

    base, settings = baseline_key(make_cfg()), job_config(make_cfg())
    assert baseline_key(make_cfg("trainer.accelerator=cpu")) == base  # no GPU here: same weights
    assert job_config(make_cfg("trainer.accelerator=cpu")) == settings
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    assert baseline_key(make_cfg("trainer.accelerator=gpu")) == baseline_key(make_cfg())
    assert baseline_key(make_cfg("trainer.accelerator=cuda")) == baseline_key(make_cfg())
    assert baseline_key(make_cfg("trainer.accelerator=cpu")) != baseline_key(make_cfg())


def test_a_cpu_baseline_key_holds_the_thread_count_it_trains_with(make_cfg, monkeypatch):
    """A joblib worker trains with 1 thread, a plain sweep with 2: other sums, other weights."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = baseline_key(make_cfg())
        torch.set_num_threads(2)
        two = baseline_key(make_cfg())
    finally:
        torch.set_num_threads(threads)
    assert one != two
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # GPU kernels: no CPU threads
    assert "threads" not in baseline_key_material(make_cfg())
    assert "threads" in baseline_key_material(make_cfg("trainer.accelerator=cpu"))


def _fake_training(calls: list):
    def train(work):
        calls.append(work)
        assert work.is_dir()
        return {"w": torch.arange(4.0)}, {"epochs": 1, "best_val_acc": 0.5}

    return train


def test_get_or_train_trains_once_and_reuses(make_cfg, tmp_path):
    cfg = make_cfg()
    cache, key, calls = BaselineCache(tmp_path / "c"), baseline_key(cfg), []
    material = baseline_key_material(cfg)
    state, meta, trained = cache.get_or_train(key, material, _fake_training(calls))
    again, meta2, trained2 = cache.get_or_train(key, material, _fake_training(calls))
    assert trained and not trained2 and len(calls) == 1
    assert torch.equal(state["w"], again["w"]) and meta2["key"] == key
    assert torch.load(cache.entry(key) / "model.pt", weights_only=True)["w"].tolist() == [
        0,
        1,
        2,
        3,
    ]
    assert not list(cache.root.glob(f".{key}*")), "no temporary folders left behind"


def test_corrupt_entry_is_rebuilt(make_cfg, tmp_path, caplog):
    cfg = make_cfg()
    cache, key, calls = BaselineCache(tmp_path / "c"), baseline_key(cfg), []
    cache.get_or_train(key, {}, _fake_training(calls))
    (cache.entry(key) / "model.pt").write_bytes(b"\x00truncated")
    with caplog.at_level("WARNING", logger="prunelab"):
        state, _, trained = cache.get_or_train(key, {}, _fake_training(calls))
    assert trained and len(calls) == 2 and state["w"].tolist() == [0, 1, 2, 3]
    assert f"{cache.entry(key)} is unreadable or incomplete: retraining" in caplog.text


def test_cached_json_computes_once(tmp_path):
    cache, calls = BaselineCache(tmp_path), []
    (tmp_path / "k").mkdir()
    for _ in range(2):
        out = cache.cached_json("k", "test-10", lambda: calls.append(1) or {"acc": 0.5})
    assert out == {"acc": 0.5} and len(calls) == 1


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    """A cache on a shared filesystem must be readable by the team, as plain files would be."""
    import os
    import stat

    from prunelab.evaluation import save_sparse
    from prunelab.io import FILE_MODE, save_torch, write_json

    mask = os.umask(0)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask
    write_json(tmp_path / "a.json", {"x": 1})
    save_torch(tmp_path / "b.pt", {"w": torch.zeros(2)})
    save_sparse({"w": torch.zeros(4)}, tmp_path / "c.sparse")
    for name in ("a.json", "b.pt", "c.sparse"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == FILE_MODE


def test_key_and_eval_tag_change_with_the_code_behind_them(make_cfg, monkeypatch):
    """An edited net (or attack) must not be served the baseline (or figures) of the old code."""
    import prunelab.evaluation
    import prunelab.models
    from prunelab import fingerprint
    from prunelab.evaluation.core import baseline_tag

    cfg = make_cfg()
    key, tag = baseline_key(cfg), baseline_tag(cfg, 100, torch.device("cpu"))
    assert baseline_key(cfg) == key, "the fingerprint is stable"
    real = fingerprint._source
    for package in (prunelab.models, prunelab.evaluation):
        monkeypatch.setattr(
            fingerprint, "_source", lambda obj, p=package: real(obj) + ("#" if obj is p else "")
        )
        new_key, new_tag = baseline_key(cfg), baseline_tag(cfg, 100, torch.device("cpu"))
        assert (new_key != key) == (package is prunelab.models)
        assert (new_tag != tag) == (package is prunelab.evaluation)


def test_eval_tag_follows_the_images_evaluated_not_how_they_load(make_cfg):
    """prunelab.evaluate may set data keys: other test images must not be served the cached
    figures of a baseline scored on others (the paired intervals would pair other images)."""
    from prunelab.evaluation.core import baseline_tag

    cpu, images, labels = torch.device("cpu"), torch.zeros(4, 1, 2, 2), torch.arange(4)
    tag = baseline_tag(make_cfg(), 100, cpu, (images, labels))
    assert baseline_tag(make_cfg("data.num_workers=1"), 100, cpu, (images, labels)) == tag
    assert baseline_tag(make_cfg("data.split_seed=7"), 100, cpu, (images, labels)) != tag
    assert baseline_tag(make_cfg(), 100, cpu, (images + 0.5, labels)) != tag
    assert baseline_tag(make_cfg(), 100, cpu, (images, labels.flip(0))) != tag


def test_code_fingerprint_reads_every_file_of_a_package(tmp_path, monkeypatch):
    import importlib

    from prunelab.fingerprint import code_fingerprint

    pkg = tmp_path / "fp_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fp_pkg")
    before = code_fingerprint(module)
    (pkg / "sub" / "deep.py").write_text("X = 2\n")
    assert code_fingerprint(module) != before


def test_own_image_folder_keys_follow_its_files_not_its_place(make_cfg, tmp_path):
    """Another folder, or changed images, retrain and re-run; the same images moved do not."""
    import shutil

    from test_data import _sports_layout

    from prunelab.identity import config_hash, job_config

    def keys(root):
        cfg = make_cfg("data=imagefolder", f"data.root={root}")
        return baseline_key(cfg), config_hash(job_config(cfg))

    _sports_layout(tmp_path / "a", ["cats", "dogs"], per_split=2)
    first = keys(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    assert keys(tmp_path / "moved") == first
    _sports_layout(tmp_path / "b", ["cats", "birds"], per_split=2)
    other = keys(tmp_path / "b")
    assert other[0] != first[0] and other[1] != first[1]
    (tmp_path / "a" / "train" / "cats" / "0.jpg").unlink()
    fewer = keys(tmp_path / "a")
    assert fewer[0] != first[0] and fewer[1] != first[1]
    # Files no split reads change nothing: notes, non-images, a class folder not selected.
    (tmp_path / "a" / "README.txt").write_text("where these came from")
    (tmp_path / "a" / "train" / "cats" / "labels.csv").write_text("0.jpg,cat")
    assert keys(tmp_path / "a") == fewer
    picked = 'data.classes=["cats","dogs"]'
    chosen = make_cfg("data=imagefolder", f"data.root={tmp_path / 'a'}", picked)
    _sports_layout(tmp_path / "a" / "more", ["birds"], per_split=2)
    for split in ("train", "valid", "test"):
        (tmp_path / "a" / "more" / split / "birds").rename(tmp_path / "a" / split / "birds")
    again = make_cfg("data=imagefolder", f"data.root={tmp_path / 'a'}", picked)
    assert baseline_key(again) == baseline_key(chosen)
    # A published dataset's folder stays out of both keys (the same files wherever they lie).
    plain = make_cfg()
    assert "files" not in baseline_key_material(plain)["data"]
    assert "files" not in job_config(plain)["data"]
