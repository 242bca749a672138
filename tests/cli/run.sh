#!/usr/bin/env bash
# Golden-file test of the sluice CLI (Postfix style: *.in -> transcript,
# compared with *.ref).
#
#   bash tests/cli/run.sh PATH/TO/sluice            run, exit 1 on any mismatch
#   bash tests/cli/run.sh PATH/TO/sluice --update   rewrite the .ref files
#
# commands.in -> expected.ref: each command runs against a fresh store and
# spool in a temporary folder (config file there; no listeners, no
# daemon).  queue.in -> queue.ref: the queue commands against a real
# spool, with and without a running sluiced (found beside sluice; skipped
# when it is not there).  Each command's stdout, stderr and exit code go
# to the transcript; volatile fields (times, dates, queue ids, generated
# passwords, the temporary path, the version) are normalised with sed.
# Then a few checks outside the transcripts: stored hashes are argon2id,
# the embedded defaults create ./var, and (as root) the CLI becomes the
# owner of the store's folder.
set -u

here=$(cd "$(dirname "$0")" && pwd)
update=0
sluice=
for a in "$@"; do
	case $a in
	--update) update=1 ;;
	-*) echo "usage: $0 PATH/TO/sluice [--update]" >&2; exit 2 ;;
	*) sluice=$a ;;
	esac
done
if [ -z "$sluice" ] || [ ! -x "$sluice" ]; then
	echo "usage: $0 PATH/TO/sluice [--update]" >&2
	exit 2
fi
sluice=$(cd "$(dirname "$sluice")" && pwd)/$(basename "$sluice")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cli.XXXXXX")
daemon_pid=
trap 'daemon_stop; rm -rf "$tmp"' EXIT
mkdir "$tmp/state"
cat >"$tmp/sluice.conf" <<'EOF'
# no listeners: the CLI needs only the store, the spool and the socket
store = sqlite:state/sluice.db
spool_dir = spool
control_socket = state/sluiced.sock
sending_addresses = 192.0.2.10 2001:db8::/64   # printed in the SPF record
EOF

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

ID1=
ID2=
normalise() {
	sed -e "s|$tmp|<TMP>|g" \
	    -e "${ID1:+s/$ID1/<ID1>/g}" -e "${ID2:+s/$ID2/<ID2>/g}" \
	    -e 's/[A-Z][a-z][a-z], [0-9]\{1,2\} [A-Z][a-z][a-z] [0-9]\{4\} [0-9:]\{8\} [-+][0-9]\{4\}/<DATE>/g' \
	    -e 's/[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z/<TIME>/g' \
	    -e 's/^\(  password: *\)[A-Za-z0-9]\{20\}\( \|$\)/\1<PASSWORD>\2/' \
	    -e 's/^sluice [0-9][0-9.]*$/sluice <VERSION>/' \
	    -e 's/ timeout [0-9]\{4,\}s comment/ timeout <SECONDS>s comment/' \
	    -e 's/operator:[A-Za-z0-9._-]*/operator:<USER>/g' \
	    -e 's/sluice-verify=[0-9a-f]\{32\}/sluice-verify=<TOKEN>/g' \
	    -e 's/s[0-9]\{8\}\([re][0-9]*\)/s<DATE>\1/g' \
	    -e 's|p=[A-Za-z0-9+/=]*\(" "[A-Za-z0-9+/=]*\)*"|p=<KEY>"|g'
}

# One block per command: "$ sluice ARGS [<<< INPUT]", its output, "[exit N]".
# run_commands FILE.in CONFIG
run_commands() {
	local line args input has_in shown conf=$2
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '' | '#'*) continue ;; esac
		if [[ $line == '!'* ]]; then
			${line#!} </dev/null >/dev/null 2>&1
			continue
		fi
		has_in=0
		args=$line
		if [[ $line == *' <<<'* ]]; then
			has_in=1
			args=${line%% <<<*}
			input=${line#* <<<}
			input=${input# }
		fi
		eval "set -- $args"
		if [ $has_in = 1 ]; then
			shown=$input
			if [ ${#input} -gt 40 ]; then
				shown="${input:0:12}... (${#input} bytes)"
			fi
			printf '$ sluice %s <<< %s\n' "$args" "$shown"
			printf '%s\n' "$input" | (cd "$tmp" && "$sluice" -c "$conf" "$@" 2>&1)
		else
			printf '$ sluice %s\n' "$args"
			(cd "$tmp" && "$sluice" -c "$conf" "$@" </dev/null 2>&1)
		fi
		echo "[exit $?]"
	done <"$1"
}

# Compare block by block, so a failure names its command.
split_blocks() {
	mkdir -p "$2"
	awk -v dir="$2" '/^\$ sluice/ { n++ } { f = sprintf("%s/%04d", dir, n); print > f }' "$1"
}

# golden NAME.in NAME.ref: run, normalise, compare (or --update the ref).
golden() {
	local name=${1%.in} b
	run_commands "$here/$1" "$3" | normalise >"$tmp/$name.transcript"
	if [ $update = 1 ]; then
		cp "$tmp/$name.transcript" "$here/$2"
		echo "$2 updated ($(grep -c '^\$ sluice' "$here/$2") commands)"
	fi
	split_blocks "$tmp/$name.transcript" "$tmp/$name.got"
	split_blocks "$here/$2" "$tmp/$name.want"
	for f in "$tmp/$name.want"/* "$tmp/$name.got"/*; do
		[ -e "$f" ] && basename "$f"
	done | sort -u >"$tmp/$name.blocks"
	while read -r b; do
		if cmp -s "$tmp/$name.want/$b" "$tmp/$name.got/$b"; then
			pass
		else
			fail "$2: $(head -n 1 "$tmp/$name.want/$b" 2>/dev/null || head -n 1 "$tmp/$name.got/$b")"
			diff -u "$tmp/$name.want/$b" "$tmp/$name.got/$b" | tail -n +3
		fi
	done <"$tmp/$name.blocks"
}

golden commands.in expected.ref "$tmp/sluice.conf"

# egress.in -> egress.ref: the egress table rendered and its exceptions, with
# a store of its own (no kernel: apply and status need a network namespace)
mkdir "$tmp/egress"
cat >"$tmp/egress.conf" <<'EOF'
store = sqlite:egress/sluice.db
spool_dir = egress/spool
control_socket = egress/sluiced.sock
egress_customer_networks = 198.18.1.0/24, 198.18.3.0/24 2001:db8:1::/48
egress_relay_addresses = 198.18.2.10 2001:db8:2::10
egress_private_networks = 198.18.4.0/24
egress_log_rate = 20
egress_blocked_timeout = 1d
EOF
golden egress.in egress.ref "$tmp/egress.conf"

# policy.in -> policy.ref: limits, the suppression list, bound networks and
# usage (issue 4), with a store of its own and two default limits
mkdir "$tmp/policy"
cat >"$tmp/policy.conf" <<'EOF'
store = sqlite:policy/sluice.db
spool_dir = policy/spool
control_socket = policy/sluiced.sock
limit_messages_per_hour = 100
limit_message_size = 10m
EOF
golden policy.in policy.ref "$tmp/policy.conf"

# Every stored hash is argon2id.
hashes=$(sqlite3 "$tmp/state/sluice.db" "SELECT username, hash FROM credentials ORDER BY username" 2>&1)
if [ -n "$hashes" ] && ! grep -qv '^[^|]*|\$argon2id\$v=19\$' <<<"$hashes"; then
	pass
else
	fail "stored hashes are not all argon2id: $hashes"
fi

# ---- the queue against a real spool, with and without sluiced -------------

daemon_stop() {
	local i
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null
		# `wait` only waits in the shell that started it, and "!daemon_stop"
		# runs in golden's pipeline (a subshell): poll until it is gone
		for i in $(seq 300); do
			kill -0 "$daemon_pid" 2>/dev/null || break
			sleep 0.1
		done
		wait "$daemon_pid" 2>/dev/null
	fi
	daemon_pid=
}

# Read one SMTP reply (the last line of a multi-line one) from fd 3.
smtp_reply() {
	local line
	while IFS= read -r -t 10 line <&3; do
		line=${line%$'\r'}
		[[ $line == [0-9][0-9][0-9]-* ]] || break
	done
	printf '%s\n' "$line"
}

# smtp_send PORT FROM RCPT...: one message; prints its queue id.
smtp_send() {
	local port=$1 from=$2 r reply
	shift 2
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	smtp_reply >/dev/null
	printf 'EHLO client.test\r\n' >&3
	smtp_reply >/dev/null
	printf 'MAIL FROM:<%s>\r\n' "$from" >&3
	smtp_reply >/dev/null
	for r in "$@"; do
		printf 'RCPT TO:<%s>\r\n' "$r" >&3
		smtp_reply >/dev/null
	done
	printf 'DATA\r\n' >&3
	smtp_reply >/dev/null
	printf 'From: <%s>\r\nTo: <%s>\r\nSubject: golden\r\nDate: Mon, 23 Nov 2026 19:30:00 +0000\r\nMessage-ID: <golden.%s>\r\n\r\nHello from the CLI test.\r\n.\r\n' \
		"$from" "$1" "$from" >&3
	reply=$(smtp_reply)
	printf 'QUIT\r\n' >&3
	smtp_reply >/dev/null
	exec 3>&-
	[[ $reply == 250* ]] && printf '%s\n' "${reply##* }"
}

sluiced=$(dirname "$sluice")/sluiced
q=$tmp/queue
if [ -x "$sluiced" ]; then
	mkdir -p "$q"
	started=0
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 30000))
		{
			echo "hostname = gw.test"
			[ "$(id -u)" = 0 ] && echo "user = nobody"
			echo "store = sqlite:state/sluice.db"
			echo "spool_dir = spool"
			echo "control_socket = state/sluiced.sock"
			echo "delivery = off"
			echo "[listener relay]"
			echo "listen = 127.0.0.1:$port"
			echo "tls = none"
			echo "mode = relay"
		} >"$q/sluice.conf"
		if [ $attempt = 1 ]; then
			# the daemon reads trusted networks at start
			[ "$(id -u)" = 0 ] && chmod 755 "$tmp"
			{ "$sluice" -c "$q/sluice.conf" tenant add acme --password-stdin <<<pw &&
			  "$sluice" -c "$q/sluice.conf" domain add acme acme.example --verified &&
			  # unsigned, so the transcript stays byte for byte the same
			  # (signing has its own tests: tests/integration/test_dkim.py)
			  sqlite3 "$q/state/sluice.db" "DELETE FROM dkim_keys" &&
			  "$sluice" -c "$q/sluice.conf" network add acme 127.0.0.1; } >"$q/setup.log" 2>&1 ||
				{ cat "$q/setup.log"; break; }
		fi
		"$sluiced" -c "$q/sluice.conf" >"$q/sluiced.log" 2>&1 &
		daemon_pid=$!
		for _ in $(seq 50); do
			grep -q 'level=info ready' "$q/sluiced.log" && { started=1; break; }
			kill -0 "$daemon_pid" 2>/dev/null || break
			sleep 0.1
		done
		[ $started = 1 ] && break
		daemon_stop
	done
	if [ $started = 1 ]; then
		ID1=$(smtp_send "$port" a@acme.example x@example.org y@example.net)
		ID2=$(smtp_send "$port" b@acme.example z@example.org)
	fi
	if [ -n "$ID1" ] && [ -n "$ID2" ]; then
		golden queue.in queue.ref "$q/sluice.conf"
	else
		fail "queue: sluiced did not start or refused the test messages"
		tail -n 20 "$q/setup.log" "$q/sluiced.log" 2>/dev/null
	fi
	daemon_stop
else
	echo "skipped: queue.in (no sluiced beside $sluice)"
fi

# The embedded defaults: no -c, state in ./var, created when missing.
mkdir "$tmp/embedded"
out=$(cd "$tmp/embedded" && "$sluice" tenant list 2>&1)
if [ "$out" = "no tenants" ] && [ -f "$tmp/embedded/var/sluice.db" ] &&
	[ "$(stat -c %a "$tmp/embedded/var")" = 750 ]; then
	pass
else
	fail "embedded defaults: '$out' $(ls -la "$tmp/embedded" 2>&1)"
fi

# As root, the CLI becomes the owner of the store's folder (the daemon's
# user), so the database it creates stays usable by the daemon.
if [ "$(id -u)" = 0 ] && getent passwd nobody >/dev/null; then
	chmod 755 "$tmp"
	mkdir "$tmp/owned" "$tmp/owned/state"
	sed 's/^store = .*/store = sqlite:state\/sluice.db/' "$tmp/sluice.conf" >"$tmp/owned/sluice.conf"
	chown nobody "$tmp/owned/state"
	out=$(printf 'pw\n' | "$sluice" -c "$tmp/owned/sluice.conf" tenant add owned --password-stdin 2>&1)
	owner=$(stat -c %U "$tmp/owned/state/sluice.db" 2>&1)
	if [ "$out" = "tenant 'owned' added" ] && [ "$owner" = nobody ]; then
		pass
	else
		fail "root switches to the store folder's owner: '$out', db owner $owner"
	fi
else
	echo "skipped: privilege switch (needs root and user nobody)"
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
