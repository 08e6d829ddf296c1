#!/usr/bin/env bash
# Installs Debian's headless Chromium (and its driver) for the dashboard's browser tests (tests/ui/).
#
# The tests drive /usr/bin/chromium with Playwright; Playwright's own browser downloads are never used.
# Idempotent: does nothing when /usr/bin/chromium exists. Uses apt-get as root, sudo otherwise.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "install-chromium: /usr/bin/chromium is missing and neither root nor sudo is available;" \
    "install the Debian packages chromium and chromium-driver" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends chromium chromium-driver
