#!/usr/bin/env bash
# Build sluice and start sluiced on its embedded defaults: SQLite store and
# spool under ./var, listeners on loopback, a self-signed certificate made
# on first start, and a demo tenant whose credentials it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build ] || meson setup build --buildtype=release
ninja -C build
if [ "$(id -u)" -eq 0 ] && ! getent passwd sluice >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sluice
fi
echo "sluiced: starting on loopback (relay 10025, submission 10587, submissions 10465, 2525); Ctrl-C stops it"
exec ./build/src/cmd/sluiced
