# Sourced by scripts/test and scripts/cluster: install what a fresh Debian machine lacks, once.
# Built tools, image layers and linters live outside the checkout in $PHASHFLEET_CACHE, so every
# clone on a warm machine reuses them.
PHASHFLEET_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/phash-fleet"
export PHASHFLEET_CACHE

# Debian packages: servers the tests start, and the real node (containerd, runc, CNI plugins, buildah).
NODE_PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap iptables conntrack iproute2)
system_packages() {
  local missing=() pkg
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v promtool >/dev/null || missing+=(prometheus)
  for pkg in "${NODE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v go >/dev/null || { echo "Go is required to build the Kubernetes binaries and helm (tools/)"; exit 1; }
}

# The project's virtualenv (editable install with the test and bench extras), redone when pyproject.toml changes.
python_env() {
  local py=${PYTHON:-python3} stamp=.venv/.phashfleet-installed want
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test,bench]"
    echo "$want" > "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}

# checkov pins packages that clash with ours, so it lives in a venv of its own.
checkov_env() {
  [ -x "$PHASHFLEET_CACHE/checkov-venv/bin/checkov" ] || {
    python3 -m venv "$PHASHFLEET_CACHE/checkov-venv" \
      && "$PHASHFLEET_CACHE/checkov-venv/bin/pip" install -q checkov==3.3.30; }
}

# The Go-built binaries (Kubernetes, helm 3 and 4, CoreDNS, KEDA), built once per pinned version.
go_tools() {
  PYTHONPATH=tests python -m harness.tools ensure
}
