#!/usr/bin/env bash
# sluice vs Postfix, end to end: smtp-source -> relay -> smtp-sink, all on
# loopback, both relays measured in one run on one machine (issue 3).  See
# bench/README.md, "End-to-end relay benchmark".
#
#   bash bench/relay.sh [BUILD_DIR]
#
# BUILD_DIR (or env SLUICE_BUILD): a Meson build folder with src/cmd/sluiced
# and src/cmd/sluice.  Without one, build-bench/ is set up with
# --buildtype=release and built.  Environment:
#   RUNS=5         rounds; each round runs Postfix and sluice once per load
#                  mode, in alternating order, then the bare sink (RUNS=1: quick check)
#   MSGS=20000     messages per run      SESSIONS=20   smtp-source sessions
#   SIZE=4096      message body bytes    MODES="c d"   c: one message per
#                  connection, d: smtp-source -d (connections reused)
#   SINK_CEILING=1 also time smtp-source straight into smtp-sink (0: skip)
#   SLUICE_EXTRA=  extra lines for sluiced's global configuration (e.g.
#                  "host_concurrency = 20"); default: stock delivery settings
#   KEEP=1         keep the temporary folder (logs, configs) at the end
#   PERF_RECORD=   sluiced: `perf record -g` sluiced during each sluice run;
#                  all: the whole machine (-a); profiles kept in logs/ (sets KEEP=1)
#
# The time of a run is from the start of smtp-source until smtp-sink's
# counter (smtp-sink -c) has every message of the run.  Needs root (a
# private Postfix instance, `postfix -c DIR start`), Postfix's smtp-source
# and smtp-sink, /usr/bin/python3, optionally perf (counts sluiced's
# connect() and fsync calls).  Everything listens on 127.0.0.1, on free
# ports picked at start; every process started here is stopped by its PID
# on exit.  Exit status 0 when every run passed its checks.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
RUNS=${RUNS:-5}
MSGS=${MSGS:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
MODES=${MODES:-c d}
SINK_CEILING=${SINK_CEILING:-1}
SLUICE_EXTRA=${SLUICE_EXTRA:-}
KEEP=${KEEP:-0}
PERF_RECORD=${PERF_RECORD:-}
[ -z "$PERF_RECORD" ] || KEEP=1
SOURCE_TIMEOUT=300 # smtp-source, per run
DRAIN_TIMEOUT=300  # after smtp-source exits, until the sink has every message
SENDER=from@bench.example
RCPT=to@example.org

BENCH_NAME=relay.sh
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
route="
# every recipient domain goes to the sink, plain SMTP
${SLUICE_EXTRA}

[route sink]
domains = *
host = 127.0.0.1:$SINKPORT
tls = none"
bench_sluice_conf "$SLPORT" on "$route"
bench_sluice_provision
bench_perf_check

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
line = f"  {d['server']:8} -{d['mode']} run {d['run']}: "
if d.get("e2e_s"):
    line += f"{d['msgs'] / d['e2e_s']:7.0f} msg/s end to end ({d['e2e_s']:.2f} s)"
else:
    line += "no end-to-end time"
if d.get("accept_s"):
    line += f", {d['msgs'] / d['accept_s']:.0f} msg/s accepting"
b = d.get("e2e_busy", d.get("busy"))
if b is not None:
    line += f", CPU busy {100 * b:.0f}%"
if isinstance(d.get("connects"), int) and d["connects"] > 0:
    line += f", {d['connects']} connections to the sink ({d['msgs'] / d['connects']:.0f} msg each)"
if isinstance(d.get("syncs"), int) and d["syncs"] > 0:
    line += f", {d['syncs']} fsyncs"
if not d.get("ok"):
    line += "  FAILED: " + str(d.get("why"))
print(line, file=sys.stderr)
EOF
}

# ---- one timed run per relay ----------------------------------------------

run_postfix() { # MODE RUN
	local mode=$1 run=$2 base res rc delivered queued ok=1 why= i
	for i in $(seq 300); do [ "$(pf_queued)" = 0 ] && break; sleep 0.1; done
	base=$(sink_count)
	res=$("$PY" "$here/timed_run.py" --timeout "$SOURCE_TIMEOUT" --sink-out "$tmp/sink.out" \
		--sink-target $((base + MSGS)) --drain-timeout "$DRAIN_TIMEOUT" \
		--log "$tmp/logs/source-postfix-$mode-$run.log" -- $(source_cmd "$PFPORT" "$mode"))
	for i in $(seq 600); do [ "$(pf_queued)" = 0 ] && break; sleep 0.1; done
	sleep 0.5 # a duplicate would show now
	delivered=$(($(sink_count) - base))
	queued=$(pf_queued)
	rc=$(echo "$res" | json_get rc)
	if [ "$rc" != 0 ]; then
		ok=0 why="smtp-source exit $rc: $(tail -c 300 "$tmp/logs/source-postfix-$mode-$run.log" | tr '\r\n' '  ')"
	elif [ "$delivered" != "$MSGS" ] || [ "$queued" != 0 ]; then
		ok=0 why="sink received $delivered of $MSGS, $queued left in Postfix's queue"
	fi
	[ "$ok" = 1 ] || failures=$((failures + 1))
	record "$res" server=postfix mode="$mode" run="$run" msgs="$MSGS" ok="$ok" why="$why" \
		delivered="$delivered"
}

sluice_queue_len() { # messages sluice still lists (pending recipients), or "?"
	"$SLUICE" -c "$conf" queue list --json 2>/dev/null |
		"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo "?"
}

run_sluice() { # MODE RUN
	local mode=$1 run=$2 base res rc delivered queued ok=1 why= warns sent deferred i
	# a fresh spool for every run: every run starts from the same state
	stop_sluiced
	rm -rf "$sldir/spool"
	start_sluiced "$mode-$run"
	# sluiced's connect() calls (its only outbound connections are to the
	# sink) and fsync/fdatasync calls, when perf can count them
	local perf_pid= perf_out=$tmp/logs/perf-sluice-$mode-$run.csv connects= syncs=
	if [ -n "$PERF" ]; then
		timeout $((SOURCE_TIMEOUT + DRAIN_TIMEOUT + 30)) perf stat -x, -o "$perf_out" \
			-p "$sluice_pid" -e syscalls:sys_enter_connect \
			-e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync </dev/null >/dev/null 2>&1 &
		perf_pid=$!
		sleep 0.5
	fi
	local rec_pid= target
	if [ -n "$PERF_RECORD" ] && command -v perf >/dev/null; then
		target="-p $sluice_pid"
		[ "$PERF_RECORD" = all ] && target=-a
		timeout $((SOURCE_TIMEOUT + DRAIN_TIMEOUT + 30)) perf record -q -g -F 999 \
			-o "$tmp/logs/perf-record-$mode-$run.data" $target </dev/null >/dev/null 2>&1 &
		rec_pid=$!
		sleep 0.5
	fi
	base=$(sink_count)
	res=$("$PY" "$here/timed_run.py" --timeout "$SOURCE_TIMEOUT" --sink-out "$tmp/sink.out" \
		--sink-target $((base + MSGS)) --drain-timeout "$DRAIN_TIMEOUT" \
		--pid "$sluice_pid" --threads \
		--log "$tmp/logs/source-sluice-$mode-$run.log" -- $(source_cmd "$SLPORT" "$mode"))
	if [ -n "$rec_pid" ]; then
		kill -INT "$rec_pid" 2>/dev/null || true
		wait "$rec_pid" 2>/dev/null || true
	fi
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		connects=$(awk -F, '/sys_enter_connect/ && $1 ~ /^[0-9]+$/ { print $1 }' "$perf_out" 2>/dev/null || true)
		syncs=$(awk -F, '/sys_enter_f(data)?sync/ && $1 ~ /^[0-9]+$/ { n += $1; k++ } END { if (k) print n }' \
			"$perf_out" 2>/dev/null || true)
	fi
	# every delivery's outcome reaches the spool in a later group commit:
	# wait (bounded) until sluice lists nothing left to deliver
	queued="?"
	for i in $(seq 120); do
		alive "$sluice_pid" || break
		queued=$(sluice_queue_len)
		[ "$queued" = 0 ] && break
		sleep 0.5
	done
	sleep 0.5 # a duplicate would show now
	delivered=$(($(sink_count) - base))
	rc=$(echo "$res" | json_get rc)
	sent=$(grep -c ' status=sent ' "$sluice_log" || true)
	deferred=$(grep -c -E ' status=(deferred|bounced|expired) ' "$sluice_log" || true)
	if ! alive "$sluice_pid"; then
		ok=0 why="sluiced exited during the run (log: $(tail -n 3 "$sluice_log" | tr '\n' ' '))"
		cp "$sluice_log" "$tmp/logs/CRASH-$(basename "$sluice_log")"
	elif [ "$rc" != 0 ]; then
		ok=0 why="smtp-source exit $rc: $(tail -c 300 "$tmp/logs/source-sluice-$mode-$run.log" | tr '\r\n' '  ')"
	elif [ "$delivered" != "$MSGS" ] || [ "$queued" != 0 ] || [ "$sent" != "$MSGS" ]; then
		ok=0 why="sink received $delivered of $MSGS, sluice logged $sent sent and $deferred deferred/failed, $queued left in its queue"
	fi
	warns=$(grep -c -E ' level=(warn|err|error|fatal|crit)' "$sluice_log" || true)
	if [ "$warns" != 0 ]; then
		say "  sluiced logged $warns warning/error lines in run $mode-$run, e.g.:"
		grep -E ' level=(warn|err|error|fatal|crit)' "$sluice_log" | head -n 3 >&2
		cp "$sluice_log" "$tmp/logs/WARN-$(basename "$sluice_log")"
	fi
	[ "$ok" = 1 ] || failures=$((failures + 1))
	record "$res" server=sluice mode="$mode" run="$run" msgs="$MSGS" ok="$ok" why="$why" \
		delivered="$delivered" sent="$sent" deferred="$deferred" log_warnings="$warns" \
		connects="${connects:-}" syncs="${syncs:-}"
}

run_sink() { # MODE RUN: the load generator's own ceiling, no relay in between
	local mode=$1 run=$2 base res rc delivered ok=1 why=
	base=$(sink_count)
	res=$("$PY" "$here/timed_run.py" --timeout "$SOURCE_TIMEOUT" --sink-out "$tmp/sink.out" \
		--sink-target $((base + MSGS)) --drain-timeout 30 \
		--log "$tmp/logs/source-sink-$mode-$run.log" -- $(source_cmd "$SINKPORT" "$mode"))
	delivered=$(($(sink_count) - base))
	rc=$(echo "$res" | json_get rc)
	if [ "$rc" != 0 ] || [ "$delivered" != "$MSGS" ]; then
		ok=0 why="smtp-source exit $rc, sink counted $delivered of $MSGS"
	fi
	[ "$ok" = 1 ] || failures=$((failures + 1))
	record "$res" server=sink mode="$mode" run="$run" msgs="$MSGS" ok="$ok" why="$why"
}

# ---- the rounds ---------------------------------------------------------
start_sluiced warmup
say "sink 127.0.0.1:$SINKPORT, Postfix 127.0.0.1:$PFPORT, sluiced 127.0.0.1:$SLPORT ($build, $buildtype)"
say "load: $(source_cmd PORT c) (and -d); $RUNS round(s); modes: $MODES"
for run in $(seq "$RUNS"); do
	say "round $run of $RUNS"
	for mode in $MODES; do
		if [ $((run % 2)) = 1 ]; then
			run_postfix "$mode" "$run"
			run_sluice "$mode" "$run"
		else
			run_sluice "$mode" "$run"
			run_postfix "$mode" "$run"
		fi
		if [ "$SINK_CEILING" = 1 ]; then
			run_sink "$mode" "$run"
		fi
	done
done
stop_sluiced

# ---- report ---------------------------------------------------------------
bench_meta "$tmp/meta.json" "sluice_extra=$SLUICE_EXTRA"
cp "$conf" "$tmp/logs/" 2>/dev/null || true
report_rc=0
"$PY" "$here/relay_report.py" "$results" "$tmp/meta.json" || report_rc=$?
cp "$results" "$tmp/logs/" 2>/dev/null || true
if [ "$failures" != 0 ] || [ "$report_rc" != 0 ]; then
	say "relay.sh: $failures run(s) failed their checks"
	KEEP=1
	exit 1
fi
exit 0
