#!/usr/bin/env bash
# Golden-file test of the sluice CLI (Postfix style: commands.in ->
# transcript, compared with expected.ref).
#
#   bash tests/cli/run.sh PATH/TO/sluice            run, exit 1 on any mismatch
#   bash tests/cli/run.sh PATH/TO/sluice --update   rewrite expected.ref
#
# Each command of commands.in runs against a fresh store and spool in a
# temporary folder (config file there; no listeners, no daemon).  Its
# stdout, stderr and exit code go to the transcript; volatile fields
# (times, generated passwords, the temporary path, the version) are
# normalised with sed.  Then a few checks outside the transcript: stored
# hashes are argon2id, the embedded defaults create ./var, and (as root)
# the CLI becomes the owner of the store's folder.
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
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/state"
cat >"$tmp/sluice.conf" <<'EOF'
# no listeners: the CLI needs only the store, the spool and the socket
store = sqlite:state/sluice.db
spool_dir = spool
control_socket = state/sluiced.sock
EOF

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

normalise() {
	sed -e "s|$tmp|<TMP>|g" \
	    -e 's/[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z/<TIME>/g' \
	    -e 's/^\(  password: *\)[A-Za-z0-9]\{20\}\( \|$\)/\1<PASSWORD>\2/' \
	    -e 's/^sluice [0-9][0-9.]*$/sluice <VERSION>/'
}

# One block per command: "$ sluice ARGS [<<< INPUT]", its output, "[exit N]".
run_commands() {
	local line args input has_in shown
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '' | '#'*) continue ;; esac
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
			printf '%s\n' "$input" | (cd "$tmp" && "$sluice" -c "$tmp/sluice.conf" "$@" 2>&1)
		else
			printf '$ sluice %s\n' "$args"
			(cd "$tmp" && "$sluice" -c "$tmp/sluice.conf" "$@" </dev/null 2>&1)
		fi
		echo "[exit $?]"
	done <"$here/commands.in"
}

run_commands | normalise >"$tmp/transcript"

if [ $update = 1 ]; then
	cp "$tmp/transcript" "$here/expected.ref"
	echo "expected.ref updated ($(grep -c '^\$ sluice' "$here/expected.ref") commands)"
fi

# Compare block by block, so a failure names its command.
split_blocks() {
	mkdir -p "$2"
	awk -v dir="$2" '/^\$ sluice/ { n++ } { f = sprintf("%s/%04d", dir, n); print > f }' "$1"
}
split_blocks "$tmp/transcript" "$tmp/got"
split_blocks "$here/expected.ref" "$tmp/want"
for f in "$tmp/want"/* "$tmp/got"/*; do
	[ -e "$f" ] && basename "$f"
done | sort -u >"$tmp/blocks"
while read -r b; do
	if cmp -s "$tmp/want/$b" "$tmp/got/$b"; then
		pass
	else
		fail "$(head -n 1 "$tmp/want/$b" 2>/dev/null || head -n 1 "$tmp/got/$b")"
		diff -u "$tmp/want/$b" "$tmp/got/$b" | tail -n +3
	fi
done <"$tmp/blocks"

# Every stored hash is argon2id, and there is one per tenant made above.
hashes=$(sqlite3 "$tmp/state/sluice.db" "SELECT username, hash FROM credentials ORDER BY username" 2>&1)
if [ -n "$hashes" ] && ! grep -qv '^[^|]*|\$argon2id\$v=19\$' <<<"$hashes"; then
	pass
else
	fail "stored hashes are not all argon2id: $hashes"
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
