# bench/common.sh: what bench/submission.sh and bench/relay.sh share.  Sourced, not run.
#
# The sourcing script sets, before sourcing:
#   BENCH_NAME  its name, for messages      here  the bench/ folder (absolute)
#   PY          /usr/bin/python3            MSGS SESSIONS SIZE SENDER RCPT KEEP
# and then calls, in this order:
#   bench_check_tools; bench_binaries [BUILD_DIR]; bench_tmp; trap bench_cleanup EXIT
#   bench_ports N (sets PORTS), bench_start_sink PORT, bench_start_postfix PORT SINKPORT
#   bench_sluice_conf PORT DELIVERY [EXTRA_CONFIG_TEXT]; bench_sluice_provision
# Every process started here is stopped by its PID (bench_cleanup; Postfix
# with `postfix -c DIR stop`); every server listens on 127.0.0.1 only.

say() { printf '%s\n' "$*" >&2; }
die() { say "$BENCH_NAME: $*"; exit 1; }

bench_check_tools() {
	[ "$(id -u)" = 0 ] || die "run as root: the Postfix baseline needs 'postfix -c DIR start'"
	local t
	for t in smtp-source smtp-sink postfix postconf timeout; do
		command -v "$t" >/dev/null || die "$t not found (apt-get install postfix)"
	done
	[ -x "$PY" ] || die "$PY not found"
}

# ---- sluice binaries ----------------------------------------------------
# Sets build, SLUICED, SLUICE, buildtype, commit.
bench_binaries() { # [BUILD_DIR]
	local repo
	repo=$(cd "$here/.." && pwd)
	build=${1:-${SLUICE_BUILD:-}}
	if [ -z "$build" ]; then
		build=$repo/build-bench
		if [ ! -f "$build/build.ninja" ]; then
			say "setting up $build (release)"
			meson setup "$build" "$repo" --buildtype=release >/dev/null || die "meson setup failed"
		fi
		say "building $build"
		ninja -C "$build" >/dev/null || die "build failed: ninja -C $build"
	fi
	build=$(cd "$build" && pwd)
	SLUICED=$build/src/cmd/sluiced
	SLUICE=$build/src/cmd/sluice
	[ -x "$SLUICED" ] && [ -x "$SLUICE" ] || die "no sluiced/sluice in $build/src/cmd"
	buildtype=$(meson introspect --buildoptions "$build" 2>/dev/null | "$PY" -c \
		'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}.get("buildtype", "?"))' \
		2>/dev/null || echo "?")
	[ "$buildtype" = release ] || say "warning: $build has buildtype=$buildtype, not release"
	# the commit the binaries were built from (others may commit while this runs)
	commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo "?")
	if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- src meson.build 2>/dev/null)" ]; then
		commit="$commit (+ uncommitted changes)"
	fi
}

# ---- temporary folder, processes, cleanup -----------------------------------
sink_pid=
sluice_pid=
sluice_log=
pf_master=
pf_started=0
pfdir=
nstart=0

bench_tmp() { # sets tmp (mode 755: sluiced and smtp-sink run as nobody)
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
	chmod 755 "$tmp"
	mkdir "$tmp/logs"
}

alive() { # PID: running and not a zombie
	local st
	st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

stop_pid() { # PID NAME: SIGTERM, wait up to 20 s, then SIGKILL; reaps our children
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 200); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		say "$2 (pid $pid) did not stop in 20 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

stop_postfix() {
	[ "$pf_started" = 1 ] || return 0
	postfix -c "$pfdir/etc" stop </dev/null >/dev/null 2>&1 || true
	local i
	for i in $(seq 100); do
		[ -n "$pf_master" ] && alive "$pf_master" || break
		sleep 0.1
	done
	if [ -n "$pf_master" ] && alive "$pf_master"; then
		say "Postfix master (pid $pf_master) still running after 'postfix stop': SIGKILL"
		kill -KILL "$pf_master" 2>/dev/null || true
	fi
	pf_started=0
}

bench_cleanup() {
	set +e
	stop_pid "$sluice_pid" sluiced
	sluice_pid=
	stop_postfix
	stop_pid "$sink_pid" smtp-sink
	sink_pid=
	[ -n "${tmp:-}" ] || return 0
	if [ "$KEEP" = 1 ]; then
		say "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}

# ---- ports --------------------------------------------------------------
bench_ports() { # N: N free loopback ports in PORTS (an array)
	local out
	out=$("$PY" -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
' "$1")
	read -r -a PORTS <<<"$out"
}

wait_port() { # PORT SECONDS
	"$PY" - "$1" "$2" <<'EOF'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
}

# ---- smtp-sink ----------------------------------------------------------
bench_start_sink() { # PORT: smtp-sink -c, its counter in $tmp/sink.out
	smtp-sink -u nobody -c "127.0.0.1:$1" 1000 >"$tmp/sink.out" 2>"$tmp/logs/sink.err" </dev/null &
	sink_pid=$!
	wait_port "$1" 10 || die "smtp-sink did not listen on 127.0.0.1:$1"
}

sink_count() { # the last mesg=N smtp-sink -c wrote
	tail -c 256 "$tmp/sink.out" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n 1 |
		cut -d= -f2 | grep . || echo 0
}

# ---- private Postfix instance (BENCH.md) -----------------------------------
bench_start_postfix() { # PORT SINKPORT: sets pfdir, pf_master, pf_started
	local port=$1 sinkport=$2 mastercf i
	pfdir=$tmp/postfix
	mkdir -p "$pfdir/etc" "$pfdir/queue" "$pfdir/data"
	chown "$(postconf -dh mail_owner)" "$pfdir/data"
	cat >"$pfdir/etc/main.cf" <<EOF
# private Postfix instance for bench/$BENCH_NAME (generated)
compatibility_level = 3.6
queue_directory = $pfdir/queue
data_directory = $pfdir/data
maillog_file = $pfdir/maillog
maillog_file_prefixes = $pfdir/
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_transport = error
relayhost = [127.0.0.1]:$sinkport
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = none
smtp_tls_security_level = none
# as in Debian's main.cf (the compiled default adds nis:mail.aliases, which logs
# a warning in every new smtpd); never consulted here (no local domains)
alias_maps = hash:/etc/aliases
EOF
	mastercf=/etc/postfix/master.cf
	[ -f "$mastercf" ] || mastercf=/usr/share/postfix/master.cf.dist
	# every service line: chroot column (5th) = n; the smtpd "smtp inet" service on 127.0.0.1:PORT
	awk -v listen="127.0.0.1:$port" '
		/^[^#[:space:]]/ && NF >= 8 { $5 = "n"; if ($1 == "smtp" && $2 == "inet") $1 = listen }
		{ print }' "$mastercf" >"$pfdir/etc/master.cf"
	grep -q "^127.0.0.1:$port inet " "$pfdir/etc/master.cf" || die "no smtp inet service in $mastercf"
	if ! postfix -c "$pfdir/etc" start </dev/null >"$tmp/logs/postfix-start.out" 2>&1; then
		cat "$tmp/logs/postfix-start.out" "$pfdir/maillog" >&2 2>/dev/null
		die "postfix -c $pfdir/etc start failed"
	fi
	pf_started=1
	for i in $(seq 50); do
		[ -s "$pfdir/queue/pid/master.pid" ] && break
		sleep 0.1
	done
	pf_master=$(tr -d ' \n' <"$pfdir/queue/pid/master.pid" 2>/dev/null || true)
	wait_port "$port" 20 || { cat "$pfdir/maillog" >&2; die "Postfix smtpd not listening on $port"; }
}

pf_queued() { # files in Postfix's queues
	find "$pfdir/queue/maildrop" "$pfdir/queue/incoming" "$pfdir/queue/active" \
		"$pfdir/queue/deferred" "$pfdir/queue/hold" -type f 2>/dev/null | wc -l
}

# ---- sluiced ------------------------------------------------------------
bench_sluice_conf() { # PORT DELIVERY(on|off) [EXTRA]: sets sldir, conf; EXTRA is appended
	local port=$1 delivery=$2 extra=${3:-} why
	if [ "$delivery" = on ]; then
		why="delivers through the [route] below"
	else
		why="acceptance only: nothing leaves the machine"
	fi
	sldir=$tmp/sluice
	mkdir -p "$sldir"
	conf=$sldir/sluice.conf
	cat >"$conf" <<EOF
# sluiced for bench/$BENCH_NAME (generated)
hostname = sluice.bench.invalid
user = nobody
log = stderr
log_level = info
store = sqlite:$sldir/state/sluice.db
spool_dir = $sldir/spool
tls_cert = $sldir/state/tls/cert.pem
tls_key = $sldir/state/tls/key.pem
control_socket = $sldir/state/sluiced.sock
max_connections = 20000
max_connections_per_ip = 20000
delivery = $delivery                     # $why
# one tenant sending tens of thousands of messages in seconds is exactly what
# containment throttles: off, so that throughput is what is measured
contain = off
EOF
	if [ -n "$extra" ]; then
		printf '%s\n' "$extra" >>"$conf"
	fi
	cat >>"$conf" <<EOF

[listener relay]
listen = 127.0.0.1:$port
tls = none
mode = relay
EOF
}

bench_sluice_provision() { # tenant "bench", its domain, loopback may relay without AUTH
	"$PY" -c 'import secrets; print(secrets.token_urlsafe(18))' |
		"$SLUICE" -c "$conf" tenant add bench --password-stdin >/dev/null
	"$SLUICE" -c "$conf" domain add bench bench.example --verified >/dev/null
	"$SLUICE" -c "$conf" network add bench 127.0.0.0/8 >/dev/null
	# DKIM=off (bench/dkim.sh): no keys, so sluiced relays unsigned
	if [ "${DKIM:-on}" = off ]; then
		sqlite3 "$sldir/state/sluice.db" "DELETE FROM dkim_keys" || die "cannot drop the DKIM keys"
	fi
}

start_sluiced() { # TAG: fresh log per start; waits for the "ready" line
	nstart=$((nstart + 1))
	sluice_log=$tmp/logs/sluiced-$nstart-$1.log
	"$SLUICED" -c "$conf" >"$sluice_log" 2>&1 </dev/null &
	sluice_pid=$!
	local i
	for i in $(seq 300); do
		grep -q ' level=info ready ' "$sluice_log" && return 0
		alive "$sluice_pid" || break
		sleep 0.1
	done
	tail -n 20 "$sluice_log" >&2
	die "sluiced did not become ready (log above)"
}

stop_sluiced() {
	stop_pid "$sluice_pid" sluiced
	sluice_pid=
}

# ---- load ---------------------------------------------------------------
source_cmd() { # PORT MODE(c|d)
	local d=
	[ "$2" = d ] && d=-d
	echo smtp-source $d -c -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -f "$SENDER" -t "$RCPT" "127.0.0.1:$1"
}

# ---- report ---------------------------------------------------------------
# FILE [KEY=VALUE ...]: the run's machine, versions and settings as JSON, for
# the report scripts; KEY=VALUE pairs are added as they are.
bench_meta() {
	local out=$1
	shift
	"$PY" - "$out" "$SLUICE" "$build: buildtype=$buildtype; HEAD was $commit when the run started" \
		"$MSGS x $SIZE-byte body, $SESSIONS sessions, $RUNS rounds (Postfix/sluice order alternating)" \
		"$(source_cmd PORT c)" "$(source_cmd PORT d)" "$@" <<'EOF'
import json, os, platform, subprocess, sys, time
out, sluice, build, messages, load_c, load_d, *extra = sys.argv[1:]
def sh(*c):
    try:
        return subprocess.run(c, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?")
mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
meta = {
    "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    "machine": f"{os.cpu_count()} CPUs ({model}), {mem} MiB",
    "kernel": platform.release(),
    "postfix": sh("postconf", "-dh", "mail_version"),
    "sluice": sh(sluice, "--version") or "?",
    "build": build,
    "messages": messages,
    "load_c": load_c,
    "load_d": load_d,
    "sink": "smtp-sink -u nobody -c 127.0.0.1:SINKPORT 1000",
}
meta.update((k, v.strip()) for k, v in (kv.split("=", 1) for kv in extra))
json.dump(meta, open(out, "w"))
EOF
}

json_get() { # KEY: that key of the JSON object on stdin
	"$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# perf can count syscalls of a process (sets PERF to "perf" or "")
bench_perf_check() {
	PERF=
	if command -v perf >/dev/null &&
		perf stat -x, -e syscalls:sys_enter_fdatasync -- true >/dev/null 2>&1; then
		PERF=perf
	fi
}
