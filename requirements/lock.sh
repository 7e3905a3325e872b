#!/usr/bin/env bash
# Refresh the pinned constraints that CI and the README install from:
#   bash requirements/lock.sh            # both files, ~5 min
#   bash requirements/lock.sh main       # only requirements/constraints.txt
#   bash requirements/lock.sh comet      # only requirements/constraints-comet.txt
# Each is resolved afresh in a new virtualenv (torch from the local CPU wheel, as the README installs
# it) and written as `pip freeze` without the project itself. Commit the result with the change that
# needed it; a dependency release can then never turn CI red by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
which_ones=${1:-all}
lock() {  # lock NAME EXTRAS
  local venv; venv=$(mktemp -d)/venv
  python -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet torch==2.13.0
  "$venv/bin/python" -m pip install --quiet -e ".[$2]"
  { echo "# pip constraints for the [$2] environment: regenerate with 'bash requirements/lock.sh' (do not edit)"
    echo "# python $("$venv/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())')"
    "$venv/bin/python" -m pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/'
  } > "requirements/$1.txt"
  rm -rf "$(dirname "$venv")"
  echo "wrote requirements/$1.txt ($(grep -vc '^#' "requirements/$1.txt") packages)"
}
[ "$which_ones" = comet ] || lock constraints test,ray
[ "$which_ones" = main ] || lock constraints-comet comet,test
