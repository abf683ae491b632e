#!/usr/bin/env bash
# Installs the system programs the integration and browser tests use (redis-server, PostgreSQL,
# rabbitmq-server, Debian's chromium), when they are missing and we may (root with apt-get).
# Elsewhere it only says what is missing: the tests then skip those parts locally, and fail under
# CI=true.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The tests start their own node (own ports, config, data); the package's service is not used.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "warning: missing system packages (${need[*]}); tests that need them will skip (fail under CI=true)" >&2
fi
