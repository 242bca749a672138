#!/usr/bin/env bash
# sluice vs Postfix: SMTP acceptance throughput, measured in one run on one
# machine, plus the no-relay and disk ceilings and sluiced's memory per idle
# session.  See bench/README.md.
#
#   bash bench/submission.sh [BUILD_DIR]
#
# BUILD_DIR (or env SLUICE_BUILD): a Meson build folder with src/cmd/sluiced
# and src/cmd/sluice.  Without one, build-bench/ is set up with
# --buildtype=release and built.  Environment:
#   RUNS=3         rounds; each round runs Postfix, sluice and the bare sink once
#                  per load mode, in alternating order (RUNS=5 for medians of 5)
#   MSGS=20000     messages per run      SESSIONS=20   smtp-source sessions
#   SIZE=4096      message body bytes    IDLE_COUNT=10000  idle sessions (0: skip)
#   KEEP=1         keep the temporary folder (logs, configs) at the end
#
# Needs root (a private Postfix instance is started with `postfix -c DIR
# start`), Postfix's smtp-source and smtp-sink, meson and ninja when
# building, and /usr/bin/python3.  Every server listens on 127.0.0.1 only,
# on free ports picked at start; every process started here is stopped by
# its PID on exit.  Exit status 0 when every run passed its checks.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PY=/usr/bin/python3
RUNS=${RUNS:-3}
MSGS=${MSGS:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
IDLE_COUNT=${IDLE_COUNT:-10000}
KEEP=${KEEP:-0}
SOURCE_TIMEOUT=300
SENDER=from@bench.example
RCPT=to@example.org

BENCH_NAME=submission.sh
# shellcheck source=common.sh
. "$here/common.sh"

bench_check_tools
bench_binaries "${1:-}"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP
bench_tmp
results=$tmp/results.jsonl
: >"$results"
failures=0

bench_ports 3
SINKPORT=${PORTS[0]} PFPORT=${PORTS[1]} SLPORT=${PORTS[2]}

bench_start_sink "$SINKPORT"
bench_start_postfix "$PFPORT" "$SINKPORT"
bench_sluice_conf "$SLPORT" off
bench_sluice_provision

# ---- one timed run ------------------------------------------------------
record() { # JSON key=value...: add the keys, append to results, print one line
	"$PY" - "$@" >>"$results" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
for a in sys.argv[2:]:
    k, v = a.split("=", 1)
    try:
        v = int(v)
    except ValueError:
        pass
    d[k] = v
print(json.dumps(d))
if d["kind"] == "load":
    line = f"  {d['server']:8} -{d['mode']} run {d['run']}: "
    if d.get("accept_s"):
        line += f"{d['msgs'] / d['accept_s']:8.0f} msg/s accepting ({d['accept_s']:.2f} s)"
    if d.get("e2e_s"):
        line += f", {d['msgs'] / d['e2e_s']:.0f} msg/s end to end"
    if d.get("busy") is not None:
        line += f", CPU busy {100 * d['busy']:.0f}%"
    if isinstance(d.get("syncs"), int) and d["syncs"] > 0:
        line += f", {d['syncs']} fsyncs ({d['msgs'] / d['syncs']:.1f} msg/fsync)"
else:
    line = f"  disk run {d['run']}: {d['appends_per_s']:.0f} appends/s (4 KiB, fdatasync per 64)"
if not d.get("ok"):
    line += "  FAILED: " + str(d.get("why"))
print(line, file=sys.stderr)
EOF
}

run_postfix() { # MODE RUN
	local mode=$1 run=$2 base res delivered queued ok=1 why= i
	for i in $(seq 300); do [ "$(pf_queued)" = 0 ] && break; sleep 0.1; done
	base=$(sink_count)
	res=$("$PY" "$here/timed_run.py" --timeout "$SOURCE_TIMEOUT" --sink-out "$tmp/sink.out" \
		--sink-target $((base + MSGS)) --drain-timeout 300 \
		--log "$tmp/logs/source-postfix-$mode-$run.log" -- $(source_cmd "$PFPORT" "$mode"))
	for i in $(seq 600); do [ "$(pf_queued)" = 0 ] && break; sleep 0.1; done
	delivered=$(($(sink_count) - base))
	queued=$(pf_queued)
	rc=$(echo "$res" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rc"])')
	if [ "$rc" != 0 ]; then
		ok=0 why="smtp-source exit $rc: $(tail -c 300 "$tmp/logs/source-postfix-$mode-$run.log" | tr '\r\n' '  ')"
	elif [ "$delivered" != "$MSGS" ] || [ "$queued" != 0 ]; then
		ok=0 why="sink received $delivered of $MSGS, $queued left in Postfix's queue"
	fi
	[ "$ok" = 1 ] || failures=$((failures + 1))
	record "$res" kind=load server=postfix mode="$mode" run="$run" msgs="$MSGS" ok="$ok" \
		why="$why" delivered="$delivered"
}

run_sluice() { # MODE RUN
	local mode=$1 run=$2 res rc check ok=1 why= warns
	# a fresh spool for every run, so every run starts from the same state
	stop_sluiced
	rm -rf "$sldir/spool"
	start_sluiced "$mode-$run"
	# count sluiced's fsync/fdatasync calls (group commit at work) when perf can
	local perf_pid= perf_out=$tmp/logs/perf-sluice-$mode-$run.csv syncs=
	if [ -n "$PERF" ]; then
		timeout $((SOURCE_TIMEOUT + 30)) perf stat -x, -o "$perf_out" -p "$sluice_pid" \
			-e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync </dev/null >/dev/null 2>&1 &
		perf_pid=$!
		sleep 0.5
	fi
	res=$("$PY" "$here/timed_run.py" --timeout "$SOURCE_TIMEOUT" --pid "$sluice_pid" \
		--log "$tmp/logs/source-sluice-$mode-$run.log" -- $(source_cmd "$SLPORT" "$mode"))
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		syncs=$(awk -F, '/sys_enter_f(data)?sync/ && $1 ~ /^[0-9]+$/ { n += $1; k++ } END { if (k) print n }' \
			"$perf_out" 2>/dev/null || true)
	fi
	rc=$(echo "$res" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rc"])')
	if ! alive "$sluice_pid"; then
		ok=0 why="sluiced exited during the run (log: $(tail -n 3 "$sluice_log" | tr '\n' ' '))"
		cp "$sluice_log" "$tmp/logs/CRASH-$(basename "$sluice_log")"
	else
		# what sluice says it has queued: every message, once, from our sender
		check=$("$SLUICE" -c "$conf" queue list --json 2>&1 | "$PY" -c '
import json, sys
msgs, size = int(sys.argv[1]), int(sys.argv[2])
try:
    q = json.load(sys.stdin)
except ValueError as e:
    print("queue list --json unreadable:", e); sys.exit()
good = sum(1 for m in q if m.get("sender") == "from@bench.example" and m.get("pending") == 1
           and m.get("recipients") == 1 and not m.get("held") and m.get("size", 0) >= size)
ids = len({m.get("id") for m in q})
print("ok" if len(q) == msgs and good == msgs and ids == msgs else
      f"queue holds {len(q)} messages ({ids} distinct ids, {good} as sent), expected {msgs}")
' "$MSGS" "$SIZE")
		if [ "$rc" != 0 ]; then
			ok=0 why="smtp-source exit $rc: $(tail -c 300 "$tmp/logs/source-sluice-$mode-$run.log" | tr '\r\n' '  ')"
		elif [ "$check" != ok ]; then
			ok=0 why=$check
		fi
	fi
	warns=$(grep -c -E ' level=(warn|err|error|fatal|crit)' "$sluice_log" || true)
	if [ "$warns" != 0 ]; then
		say "  sluiced logged $warns warning/error lines in run $mode-$run, e.g.:"
		grep -E ' level=(warn|err|error|fatal|crit)' "$sluice_log" | head -n 3 >&2
		cp "$sluice_log" "$tmp/logs/WARN-$(basename "$sluice_log")"
	fi
	[ "$ok" = 1 ] || failures=$((failures + 1))
	record "$res" kind=load server=sluice mode="$mode" run="$run" msgs="$MSGS" ok="$ok" \
		why="$why" log_warnings="$warns" syncs="${syncs:-}"
}

run_sink() { # MODE RUN: the load generator's own ceiling, no relay in between
	local mode=$1 run=$2 base res delivered ok=1 why=
	base=$(sink_count)
	res=$("$PY" "$here/timed_run.py" --timeout "$SOURCE_TIMEOUT" --sink-out "$tmp/sink.out" \
		--sink-target $((base + MSGS)) --drain-timeout 30 \
		--log "$tmp/logs/source-sink-$mode-$run.log" -- $(source_cmd "$SINKPORT" "$mode"))
	delivered=$(($(sink_count) - base))
	rc=$(echo "$res" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rc"])')
	if [ "$rc" != 0 ] || [ "$delivered" != "$MSGS" ]; then
		ok=0 why="smtp-source exit $rc, sink counted $delivered of $MSGS"
	fi
	[ "$ok" = 1 ] || failures=$((failures + 1))
	record "$res" kind=load server=sink mode="$mode" run="$run" msgs="$MSGS" ok="$ok" \
		why="$why"
}

run_disk() { # RUN: on the spool's file system
	local res
	mkdir -p "$sldir/spool"
	res=$("$PY" "$here/disk_ceiling.py" "$sldir/spool")
	record "$res" kind=disk run="$1" ok=1
}

# perf counts sluiced's fsync/fdatasync calls when it can (optional)
bench_perf_check

# ---- the rounds ---------------------------------------------------------
start_sluiced warmup
say "sink 127.0.0.1:$SINKPORT, Postfix 127.0.0.1:$PFPORT, sluiced 127.0.0.1:$SLPORT ($build, $buildtype)"
say "load: $(source_cmd PORT c) and the same with -d; $RUNS round(s)"
for run in $(seq "$RUNS"); do
	say "round $run of $RUNS"
	for mode in c d; do
		if [ $((run % 2)) = 1 ]; then
			run_postfix "$mode" "$run"
			run_sluice "$mode" "$run"
		else
			run_sluice "$mode" "$run"
			run_postfix "$mode" "$run"
		fi
		run_sink "$mode" "$run"
	done
	run_disk "$run"
done

# ---- idle sessions on a fresh sluiced -------------------------------------
idle_json=-
if [ "$IDLE_COUNT" -gt 0 ]; then
	say "idle sessions: $IDLE_COUNT on a fresh sluiced"
	stop_sluiced
	rm -rf "$sldir/spool"
	start_sluiced idle
	idle_json=$tmp/idle.json
	if ! "$PY" "$here/idle_sessions.py" --pid "$sluice_pid" --port "$SLPORT" \
		--count "$IDLE_COUNT" --json "$idle_json" >&2; then
		say "idle sessions: not every session was opened and kept (see above)"
		failures=$((failures + 1))
	fi
	alive "$sluice_pid" || { say "sluiced exited during the idle test"; tail -n 5 "$sluice_log" >&2; }
fi
stop_sluiced

# ---- report ---------------------------------------------------------------
bench_meta "$tmp/meta.json" "runs=$RUNS"
report_rc=0
"$PY" "$here/report.py" "$results" "$idle_json" "$tmp/meta.json" || report_rc=$?
cp "$results" "$tmp/logs/" 2>/dev/null || true
if [ "$failures" != 0 ] || [ "$report_rc" != 0 ]; then
	say "submission.sh: $failures run(s) failed their checks"
	KEEP=1
	exit 1
fi
exit 0
