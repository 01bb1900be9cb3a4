#!/usr/bin/env bash
# Installs Debian's chromium for the report's headless-browser test (tests/test_reports_*.py), when it can:
# as root with apt-get. Anywhere else it says why and exits 0; the browser test then skips with a reason.
set -u
if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: $(chromium --version 2>/dev/null | tail -n 1) already installed"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install-chromium: not root; skipping (the report's browser test will skip: chromium absent)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not found (not Debian/Ubuntu); skipping (the browser test will skip)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
  echo "install-chromium: installed $(chromium --version 2>/dev/null | tail -n 1)"
else
  echo "install-chromium: apt-get install chromium failed; the browser test will skip" >&2
fi
exit 0
