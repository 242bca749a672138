#!/usr/bin/env bash
# Run every sluice test: unit (cmocka), CLI golden files, integration with
# real clients, a short fuzz run of each parser; then the unit and
# integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
fuzz_seconds="${SLUICE_FUZZ_SECONDS:-30}"
status=0
step() { echo; echo "=== $*"; }
fail() { echo "FAILED: $*"; status=1; }

run_suite() { # build-dir label
	local b=$1
	step "$2: unit tests"
	meson test -C "$b" --print-errorlogs || fail "$2 unit tests"
	if [ -x tests/cli/run.sh ] || [ -f tests/cli/run.sh ]; then
		step "$2: CLI golden tests"
		bash tests/cli/run.sh "$b/src/cmd/sluice" || fail "$2 CLI tests"
	fi
	step "$2: integration tests"
	SLUICE_BUILD="$b" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration \
		|| fail "$2 integration tests"
}

step "build (release with assertions)"
[ -d build ] || meson setup build
ninja -C build
run_suite build plain

step "build (ASan + UBSan)"
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_suite build-asan sanitized
unset ASAN_OPTIONS UBSAN_OPTIONS

step "fuzz (libFuzzer, ${fuzz_seconds}s per harness)"
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=disabled \
	-Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-fuzz
for f in build-fuzz/tests/fuzz/fuzz_*; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	name=$(basename "$f")
	# the working corpus grows in the build folder; seeds stay in git
	corpus="build-fuzz/corpus-$name"
	mkdir -p "$corpus"
	seeds=()
	[ -d "tests/fuzz/seeds/$name" ] && seeds=("tests/fuzz/seeds/$name")
	if "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=1 \
		"$corpus" "${seeds[@]}" >"/tmp/sluice-$name.log" 2>&1; then
		echo "$name: $(grep -E 'stat::number_of_executed_units' "/tmp/sluice-$name.log" | tail -1)"
	else
		tail -40 "/tmp/sluice-$name.log"
		fail "fuzzer $name"
	fi
done

echo
if [ $status -eq 0 ]; then echo "sluice: all test stages passed"; else echo "sluice: some test stages FAILED"; fi
exit $status
