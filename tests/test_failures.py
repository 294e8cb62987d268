"""Bad input met at run time, unloadable files: one line naming the problem, nothing lost.

Also: W&B online without network or credentials falls back offline.
"""

from __future__ import annotations

import time

import pytest
from sweep_tools import (
    assert_one_line_failure,
)

from conftest import DATA, run_train


def test_missing_data_root(tmp_path):
    proc = run_train(
        [
            "experiment=smoke",
            f"paths.data_dir={tmp_path}/none",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
        ]
    )
    assert_one_line_failure(proc, "Fashion-MNIST not found")
    assert not (tmp_path / "run" / "results.json").exists()
    # The job folder says why too, not only the console that may be gone.
    log = (tmp_path / "run" / "train.log").read_text()
    # Hydra's log format names the logger and level once: "[...][prunelab][ERROR] - <text>".
    assert "[prunelab][ERROR] - Fashion-MNIST not found" in log
    assert "prunelab: error:" not in log


def test_warnings_reach_the_jobs_log_file_once(tmp_path, capsys):
    """A job's warning goes to the console and to train.log (Hydra's file handler), once each."""
    import logging

    from prunelab.data.base import capped_size

    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        assert capped_size("data.test_size", 20, 10, "test images") == 10
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = "data.test_size=20 but there are only 10 test images; using all 10"
    assert capsys.readouterr().err.count(f"prunelab: warning: {text}") == 1
    # The log record carries the level, so its text does not repeat "prunelab: warning:".
    log = (tmp_path / "train.log").read_text()
    assert log.count(text) == 1 and "prunelab: warning" not in log


def test_empty_sports_class_folder(tmp_path):
    from test_data import _sports_layout

    classes = ["golf", "tennis"]
    _sports_layout(tmp_path / "sports", classes, per_split=2)
    for f in (tmp_path / "sports" / "valid" / "tennis").iterdir():
        f.unlink()
    proc = run_train(
        [
            "data=sports",
            f"data.root={tmp_path}/sports",
            "data.classes=[golf,tennis]",
            "experiment=smoke",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
        ]
    )
    assert_one_line_failure(proc, "tennis")
    assert not (tmp_path / "run" / "results.json").exists()


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_train(["experiment=smoke", f"hydra.run.dir={blocker}/run"])
    assert_one_line_failure(proc, "is a file")
    assert proc.returncode == 2


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    proc = run_train(
        [
            "experiment=smoke",
            "baseline.optimizer.lr=1e30",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
            f"paths.data_dir={DATA}",
        ]
    )
    assert_one_line_failure(proc, "loss became nan")
    # The mark holds the error line; a checked error has no traceback to keep in error.log.
    assert "loss became nan" in (tmp_path / "run" / "FAILED").read_text()
    assert not (tmp_path / "run" / "error.log").exists()
    assert not (tmp_path / "run" / "results.json").exists()
    assert not [
        p
        for p in (tmp_path / "c").iterdir()
        if not p.name.startswith(".") and not p.name.endswith(".lock")
    ]


def test_weights_gone_nan_while_fine_tuning_say_so_in_one_line(tmp_path, monkeypatch):
    """A diverged fine-tune is named as such, not as masks that failed (NaN is not zero); and
    wandb's own ~25 console lines stay off, its run named in one log line instead."""
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    proc = run_train(
        [
            "experiment=smoke",
            "finetune.optimizer.lr=1e30",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
            f"paths.data_dir={DATA}",
        ]
    )
    assert_one_line_failure(proc, "training diverged in epoch 0: weights became NaN or infinite")
    assert "W&B run (offline): wandb sync " in proc.stdout
    assert not (tmp_path / "run" / "results.json").exists()


def test_wandb_settings_of_ones_own_are_passed_on_not_replaced(make_cfg, monkeypatch, tmp_path):
    """The job silences wandb's console with its own Settings, unless the user gave some."""
    from prunelab import tracking

    given = []

    class Stop(Exception):
        pass

    def started(logger_cfg, kwargs):
        given.append(kwargs)
        raise Stop

    monkeypatch.setattr(tracking, "started", started)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    for extra in ([], ["+logger.wandb.settings={console: wrap}"]):
        with pytest.raises(Stop):
            tracking.Tracker(make_cfg(*extra), {}, tmp_path, "abc")
    import wandb

    assert isinstance(given[0]["settings"], wandb.Settings)  # the job's: silent
    assert given[1]["settings"] == {"console": "wrap"}  # the user's, as wandb.init reads it


@pytest.mark.parametrize(
    "env", [{}, {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}]
)
def test_wandb_online_without_credentials_or_network_falls_back_offline(tmp_path, monkeypatch, env):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    start = time.time()
    proc = run_train(
        [
            "experiment=smoke",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.time() - start < 120
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("prunelab: warning")]
    assert len(warnings) == 1 and "offline" in warnings[0]
    assert (tmp_path / "run" / "results.json").is_file()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("mode", ["run", "shared"])
def test_wandbs_other_online_modes_fall_back_offline_too(mode, tmp_path, monkeypatch, capsys):
    from prunelab.tracking import resolve_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert resolve_mode(mode) == "offline"
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"prunelab: warning: W&B {mode} mode unavailable (no W&B API key")


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("+finetune.optimizer.momentum=0.9", "finetune.optimizer (torch.optim.Adam): TypeError:"),
        ("+baseline.optimizer.betas=[0.9]", "baseline.optimizer (torch.optim.Adam): "),
    ],
)
def test_an_optimizer_that_cannot_be_built_stops_before_training(override, says, make_cfg):
    """Adam takes no momentum: found by the config check, not after the baseline's training."""
    from prunelab.errors import PrunelabError
    from prunelab.validate import check_config

    with pytest.raises(PrunelabError) as err:
        check_config(make_cfg(override))
    assert str(err.value).startswith(says) and "\n" not in str(err.value)


@pytest.mark.parametrize(("value", "hint"), [("50", True), ("80.0", True), ("1.5", False)])
def test_a_sparsity_given_in_percent_gets_a_hint(value, hint):
    from prunelab.errors import PrunelabError
    from prunelab.validate import check_sparsity

    with pytest.raises(PrunelabError) as err:
        check_sparsity(value)
    assert ("(a fraction: " in str(err.value)) == hint


def test_unloadable_files_give_one_line_naming_them(tmp_path):
    import argparse

    import torch

    from prunelab.errors import PrunelabError
    from prunelab.io import load_torch

    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(8)}, good)
    (tmp_path / "half.pt").write_bytes(good.read_bytes()[:200])
    (tmp_path / "tail.pt").write_bytes(good.read_bytes()[:-30])  # torch says "Errno 22" only
    (tmp_path / "text.pt").write_text("hello\n")  # torch says "KeyError: 104" only
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"ns": argparse.Namespace(x=1)}, tmp_path / "object.pt")
    for name, why in [
        ("half.pt", "truncated or damaged (200 bytes"),
        ("tail.pt", "truncated or damaged"),
        ("text.pt", "not a file written by torch.save"),
        ("empty.pt", "the file is empty"),
        ("object.pt", "(argparse.Namespace) that weights_only=True refuses"),
    ]:
        with pytest.raises(PrunelabError) as err:
            load_torch(tmp_path / name)
        message = str(err.value)
        assert "\n" not in message and str(tmp_path / name) in message and why in message
        assert "weights_only` set to `False`" not in message  # never relay the unsafe advice


def test_report_command_line_mistakes_are_one_line(tmp_path, capsys):
    from prunelab.report.__main__ import main

    for argv, says in (
        ([str(tmp_path), "report.figures=false"], "report.figures=false is written --no-figures"),
        ([], "the following arguments are required: sweep_dir (usage: python -m prunelab.report"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and "\n" not in err and err.startswith("prunelab: error:")
        assert says in err


@pytest.mark.parametrize("content", [b"\xff\xfe not UTF-8", b"[1, 2]", b'"text"', b'{"a": 1'])
def test_a_corrupt_json_file_is_named_and_a_corrupt_cache_entry_rebuilt(content, tmp_path):
    """Not UTF-8 (UnicodeDecodeError) or JSON but no object (AttributeError in the caller)
    crashed where a torn file gave the one-line error and the cache rebuilt its entry."""
    import torch

    from prunelab.cache import BaselineCache
    from prunelab.errors import PrunelabError
    from prunelab.io import read_json

    (tmp_path / "file.json").write_bytes(content)
    with pytest.raises(PrunelabError) as err:
        read_json(tmp_path / "file.json")
    assert str(tmp_path / "file.json") in str(err.value) and "\n" not in str(err.value)
    cache = BaselineCache(tmp_path / "cache")
    entry = cache.entry("key")
    entry.mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, entry / "model.pt")
    (entry / "meta.json").write_bytes(content)
    (entry / "test.json").write_bytes(content)
    assert cache.load("key") is None  # so get_or_train rebuilds it
    assert cache.cached_json("key", "test", lambda: {"test/acc": 0.9}) == {"test/acc": 0.9}
