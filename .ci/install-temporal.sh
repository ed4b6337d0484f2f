#!/usr/bin/env bash
# Builds the Temporal CLI (which embeds the dev server the agent and the tests run) from its Go
# module into ${GTM_CACHE_DIR:-$HOME/.cache/gtm}/bin, unless a binary is already there or
# TEMPORAL_CLI_PATH names one. Needs Go (looked for on PATH, then in /usr/local/go/bin).
set -euo pipefail

TEMPORAL_CLI_VERSION=v1.5.1
cache_dir="${GTM_CACHE_DIR:-${HOME}/.cache/gtm}"
bin_dir="${cache_dir}/bin"

if [[ -n ${TEMPORAL_CLI_PATH:-} ]]; then
  if [[ -x ${TEMPORAL_CLI_PATH} ]]; then
    echo "using TEMPORAL_CLI_PATH=${TEMPORAL_CLI_PATH}"
    exit 0
  fi
  echo "TEMPORAL_CLI_PATH=${TEMPORAL_CLI_PATH} is not an executable file" >&2
  exit 1
fi

if [[ -x ${bin_dir}/temporal ]]; then
  echo "already built: ${bin_dir}/temporal ($("${bin_dir}/temporal" --version 2>/dev/null | head -n 1))"
  exit 0
fi

export PATH="${PATH}:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "Go is needed to build the Temporal CLI: install it (https://go.dev/dl/) or set TEMPORAL_CLI_PATH" >&2
  exit 1
fi

mkdir -p "${bin_dir}"
echo "building temporal ${TEMPORAL_CLI_VERSION} with $(go version) into ${bin_dir}"
# CGO off: the CLI's SQLite driver is pure Go, and a static binary runs on any glibc.
CGO_ENABLED=0 GOBIN="${bin_dir}" go install "github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}"
"${bin_dir}/temporal" --version
