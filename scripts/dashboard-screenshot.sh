#!/usr/bin/env bash
# Takes a screenshot of the sale-day dashboard (GET /) of a running node with headless
# Chromium from Debian's packages.
#   scripts/dashboard-screenshot.sh [URL] [OUT.png]
# Default: http://127.0.0.1:7070/ -> dashboard.png. Installs chromium if it is missing.
set -euo pipefail
url="${1:-http://127.0.0.1:7070/}"
out="${2:-dashboard.png}"
# Chromium, and a Japanese font so the labels are not drawn as empty boxes.
if ! command -v chromium >/dev/null || ! fc-list :lang=ja 2>/dev/null | grep -q .; then
  echo "installing chromium and fonts-noto-cjk from Debian's packages..." >&2
  apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1280,1600 \
  --screenshot="$(realpath -m "$out")" "$url" 2>/dev/null
echo "wrote $out"
