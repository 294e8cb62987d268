"""The suite's own set-up: what its speed and its shared fixtures rely on."""

import re
import subprocess
import sys


def test_xdist_keeps_a_group_on_one_worker(tmp_path):
    """`make test` runs `--dist loadgroup` so that the tests sharing an expensive fixture (the
    smoke sweep, a trained model) run on one worker, which builds it once. pytest 9.2 broke
    that silently (pytest-xdist#1386: every worker built the smoke sweep again); this fails
    if an upgrade spreads a group over the workers again."""
    for name in ("a", "b"):
        tests = "".join(f"def test_{i}():\n    pass\n\n\n" for i in range(4))
        marked = f'import pytest\n\npytestmark = pytest.mark.xdist_group("g")\n\n\n{tests}'
        (tmp_path / f"test_{name}.py").write_text(marked)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", f"--rootdir={tmp_path}", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    ran = re.findall(r"^\[(gw\d+)\].* PASSED (\S+)", proc.stdout, re.M)
    assert len(ran) == 8, proc.stdout[-3000:]
    assert len({worker for worker, _ in ran}) == 1, proc.stdout[-3000:]
