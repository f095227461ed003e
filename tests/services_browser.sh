#!/usr/bin/env bash
# The browser the board's tests drive (tests/board): Debian's Chromium, run by Playwright
# for Python from the test extras with executable_path=/usr/bin/chromium (Playwright's own
# browser download cannot be reached from these machines). Installed if missing.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "services: chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "services: chromium is missing and apt-get is not available: install Chromium at /usr/bin/chromium" >&2
  exit 1
fi
echo "services: installing chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
[ -x /usr/bin/chromium ] || { echo "services: chromium did not install at /usr/bin/chromium" >&2; exit 1; }
echo "services: chromium installed ($(/usr/bin/chromium --version 2>/dev/null))" >&2
