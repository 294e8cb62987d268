#!/usr/bin/env bash
# Create the virtual environment and install prunelab with the locked versions.
#
# torchattacks is installed with --no-deps: its metadata pins requests~=2.25.1, which has
# known CVEs (CVE-2023-32681, CVE-2024-35195); `import torchattacks` needs only torch,
# numpy, scipy and tqdm, all of which prunelab requires itself. So we keep a current
# requests (see requirements/lock.txt) and `pip check` reports that one pin, by design.
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# pip byte-compiles what it installs on one core (~55 s for torch here); compileall on every
# core does the same in ~20 s. Like pip, it goes past files that do not compile for this Python
# (torch ships a 3.12-only test module), hence `|| true`.
$PIP install -q --disable-pip-version-check --no-compile -c requirements/lock.txt -e ".[dev,launchers]"
$PIP install -q --disable-pip-version-check --no-compile -c requirements/lock.txt --no-deps torchattacks
"$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true
"$VENV/bin/python" -c "import torch, torchattacks, lightning, hydra, wandb, requests; \
print(f'prunelab env: torch {torch.__version__}, lightning {lightning.__version__}, requests {requests.__version__}')"
