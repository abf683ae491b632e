#!/usr/bin/env bash
# Fetches the browser assets the web page serves (never committed, never from a CDN):
# the Socket.IO client from the npm registry, copied into the app's static/vendor folder.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=corelane/service/ui/static/vendor
if [ -f "$dest/socket.io.min.js" ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
  bash scripts/ensure-system-deps.sh || true
fi
npm install --no-audit --no-fund --silent
mkdir -p "$dest"
cp node_modules/socket.io-client/dist/socket.io.min.js "$dest/"
