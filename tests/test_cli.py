"""Bad input on the command line: one clear line, non-zero exit, nothing written, no training."""

import pytest

from conftest import run_train


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sparsity=-0.1"], "sparsity must be in [0, 1)"),
        (["sparsity=1"], "sparsity must be in [0, 1)"),
        (["sparsity=1.5"], "sparsity must be in [0, 1)"),
        (["sparsity=abc"], "sparsity must be a number"),
        (["-m", "sparsity=0.2,abc"], "sparsity must be a number"),
        (["model=vgg"], "unknown model 'vgg'; choose one of: resnetsmall, simplecnn"),
        (["data=imagenet"], "unknown data 'imagenet'"),
        (["-m", "model=simplecnn,resnet"], "unknown model 'resnet'"),
    ],
)
def test_bad_input_is_one_line(args, expected, tmp_path):
    proc = run_train([*args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"])
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("prunelab: error:") and expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.rglob("results.json")) and not (tmp_path / "run").exists()


def test_misspelt_key_is_one_line(tmp_path):
    proc = run_train(["data.trian_size=10", f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "prunelab: error: unknown config key 'data.trian_size' (check its spelling)"
    )
    assert not (tmp_path / "run").exists()
