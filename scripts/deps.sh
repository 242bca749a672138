#!/usr/bin/env bash
# Install what sluice needs to build, test and benchmark on Debian 12.
# Idempotent; skips apt when everything is already there.
set -euo pipefail
pkgs=(
	build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
	libevent-dev libssl-dev libsqlite3-dev libsodium-dev libjansson-dev libcmocka-dev libunbound-dev
	libnftables-dev nftables
	openssl sqlite3 python3 python3-pytest python3-pytest-timeout swaks libnet-ssleay-perl libio-socket-ssl-perl curl msmtp postfix iproute2 procps
	nsd ldnsutils python3-aiosmtpd python3-dnspython dns-root-data python3-dkim python3-nacl
	# Prometheus' own text-format parser reads /metrics in tests/integration/test_metrics.py
	python3-prometheus-client
	# reads the egress block's nflog lines in tests/integration/test_egress.py
	tcpdump
	# the real scanners tests/integration/test_scan.py starts with configs of its own
	clamav-daemon rspamd
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	# postfix only supplies smtp-source/smtp-sink and the benchmark
	# baseline; keep its package scripts from configuring a system MTA
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
