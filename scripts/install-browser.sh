#!/usr/bin/env bash
# Debian's Chromium drives the end-to-end browser tests (Playwright with
# executable_path=/usr/bin/chromium). We never download a browser build.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium for the browser tests..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)." >&2
  echo "The browser tests fail without it." >&2
fi
