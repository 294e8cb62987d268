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
$PIP install -q --disable-pip-version-check -c requirements/lock.txt -e ".[dev,launchers]"
$PIP install -q --disable-pip-version-check -c requirements/lock.txt --no-deps torchattacks
"$VENV/bin/python" -c "import torch, torchattacks, lightning, hydra, wandb, requests; \
print(f'prunelab env: torch {torch.__version__}, lightning {lightning.__version__}, requests {requests.__version__}')"
