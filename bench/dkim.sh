#!/usr/bin/env bash
# DKIM signing cost (issue 5): microseconds per message for each algorithm
# (bench/dkim_bench.c on the signer sluiced uses), then, with RELAY=1, the
# end-to-end relay rate of bench/relay.sh with signing on and off.
#
#   bash bench/dkim.sh [BUILD_DIR]
#
# BUILD_DIR (or env SLUICE_BUILD): a Meson build folder (release for real
# figures; default build-bench, set up and built as relay.sh does).
# Environment: N=2000 signatures per algorithm, SIZE=4096 body bytes;
# RELAY=1 also runs relay.sh (needs root and Postfix, see relay.sh) with
# RUNS (default 1), MSGS (default 20000) and MODES (default d), once with
# DKIM on and once with DKIM=off (keys deleted after provisioning).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${1:-${SLUICE_BUILD:-$repo/build-bench}}
N=${N:-2000}
SIZE=${SIZE:-4096}
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$repo" --buildtype=release >/dev/null
fi
ninja -C "$build" src/message/libsluice_message.a src/util/libsluice_util.a >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-dkim-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -std=c17 -O2 -D_GNU_SOURCE -I"$repo/src" -o "$tmp/dkim_bench" "$here/dkim_bench.c" \
	"$build/src/message/libsluice_message.a" "$build/src/util/libsluice_util.a" -lcrypto
echo "== DKIM signing cost per message ($(nproc) cores; $(meson introspect --buildoptions "$build" |
	/usr/bin/python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["buildtype"])') build, $(openssl version))"
"$tmp/dkim_bench" "$N" "$SIZE"

if [ "${RELAY:-0}" = 1 ]; then
	for dkim in on off; do
		echo "== end-to-end relay with DKIM $dkim"
		DKIM=$dkim RUNS=${RUNS:-1} MSGS=${MSGS:-20000} MODES=${MODES:-d} SINK_CEILING=0 \
			bash "$here/relay.sh" "$build" 2>&1 | grep -E 'sluice|postfix|ratio' | grep -v '^\s*$' || true
	done
fi
