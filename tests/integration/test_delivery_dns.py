"""Delivery to MX hosts found in DNS: a real DNS server (nsd, tests/dns) on loopback serving
sluice.test zones, sluice's resolver pointed at it alone, aiosmtpd peers on the loopback
addresses the zones name (127.0.0.x), all on one port (mx_port).

Names used (tests/dns/dnsserver.py): multi (MX 10 mx1 127.0.0.11, 20 mx2 127.0.0.12),
equal (two MX at 10: 127.0.0.21, 127.0.0.22), nomx (A 127.0.0.31), nullmx (MX 0 .),
dnssec.sluice.test (signed; MX mx 127.0.0.61 with TLSA 3 1 1 at _25 and _2525),
bogus.sluice.test (signature broken), dead (delegated to nothing).
"""
import os
import sys
import time

import pytest

from mxpeer import MXPeer
from sluicelib import free_port, token, wait_for
from test_delivery import queue_empty, rcpt_states, submit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dns"))
from dnsserver import TestDNS  # noqa: E402

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    d = TestDNS(tmp_path_factory.mktemp("dns"))
    d.start()
    yield d
    d.stop()


@pytest.fixture
def mx_port():
    return free_port()


@pytest.fixture
def peers():
    made = []

    def make(host, port, **start):
        p = MXPeer(host=host, port=port).start(**start)
        made.append(p)
        return p

    yield made, make
    for p in made:
        p.stop()


def dns_sluice(sluice_factory, dns, mx_port, extra="", dnssec=False, routes=""):
    """A sluiced resolving with the test DNS server only; mail back to acme.example (the
    DSNs) goes to a sink route so bounces can be read."""
    sink = MXPeer(host="127.0.0.1", port=free_port()).start()
    g = (f"delivery = on\nmx_port = {mx_port}\nresolver = {dns.server}\n"
         f"resolver_option = local-zone: sluice.test. transparent\n"
         f"retry_schedule = 1s\ntimeout_connect = 3s\ntimeout_greeting = 10s\n"
         f"timeout_remote_command = 10s\nmx_tls = opportunistic\n")
    if dnssec:
        # sluiced runs as an unprivileged user: give it a readable copy
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="sluice-anchor-")
        os.chmod(d, 0o755)
        anchor = os.path.join(d, "anchors")
        shutil.copyfile(dns.anchor_file, anchor)
        os.chmod(anchor, 0o644)
        g += f"dnssec = on\nresolver_trust_anchor = {anchor}\n"
    sl = sluice_factory(extra_global=g + extra,
                        extra_sections=f"[route sink]\ndomains = acme.example\n"
                                       f"host = 127.0.0.1:{sink.port}\ntls = none\n{routes}")
    sl.sink = sink
    return sl


@pytest.fixture
def cleanup_sinks():
    made = []
    yield made
    for s in made:
        s.sink.stop()


def test_mx_preference_and_fallback(sluice_factory, dns, mx_port, peers, cleanup_sinks):
    """The lowest preference gets the mail; when it refuses connections the next MX does."""
    made, make = peers
    mx2 = make("127.0.0.12", mx_port)
    # no connection cache: the second message must make a new connection
    sl = dns_sluice(sluice_factory, dns, mx_port, extra="connection_cache_time = 0\n")
    cleanup_sinks.append(sl)
    # mx1 (127.0.0.11, preference 10) is down: nothing listens there
    submit(sl, "a@multi.sluice.test", token())
    msgs = mx2.wait_messages(1, timeout=30)
    assert len(msgs) == 1, sl.log_tail(30)
    assert "127.0.0.11" in sl.log_text()  # tried first
    mx1 = make("127.0.0.11", mx_port)
    submit(sl, "b@multi.sluice.test", token())
    assert len(mx1.wait_messages(1, timeout=30)) == 1, sl.log_tail(30)
    assert len(mx2.messages) == 1
    assert queue_empty(sl)


def test_equal_preference_spreads(sluice_factory, dns, mx_port, peers, cleanup_sinks):
    """Two MX at the same preference: over 16 messages both get some (RFC 5321 5.1 random
    order; chance of all on one host 2^-15)."""
    made, make = peers
    a = make("127.0.0.21", mx_port)
    b = make("127.0.0.22", mx_port)
    sl = dns_sluice(sluice_factory, dns, mx_port, extra="messages_per_connection = 1\n")
    cleanup_sinks.append(sl)
    for i in range(16):
        submit(sl, f"u{i}@equal.sluice.test", token())
    assert wait_for(lambda: len(a.messages) + len(b.messages) == 16, timeout=60), \
        (len(a.messages), len(b.messages), sl.log_tail(30))
    assert a.messages and b.messages, (len(a.messages), len(b.messages))


def test_no_mx_uses_address(sluice_factory, dns, mx_port, peers, cleanup_sinks):
    made, make = peers
    p = make("127.0.0.31", mx_port)
    sl = dns_sluice(sluice_factory, dns, mx_port)
    cleanup_sinks.append(sl)
    submit(sl, "x@nomx.sluice.test", token())
    assert len(p.wait_messages(1, timeout=30)) == 1, sl.log_tail(30)


@pytest.mark.parametrize("domain,status", [("nullmx.sluice.test", "5.1.10"),
                                           ("nosuch.sluice.test", "5.1.2")])
def test_null_mx_and_nxdomain_bounce_at_once(sluice_factory, dns, mx_port, domain, status,
                                             cleanup_sinks):
    sl = dns_sluice(sluice_factory, dns, mx_port)
    cleanup_sinks.append(sl)
    submit(sl, f"x@{domain}", token())
    msgs = sl.sink.wait_messages(1, timeout=30)
    assert len(msgs) == 1 and msgs[0]["mail_from"] == "", sl.log_tail(30)
    assert f"Status: {status}".encode() in msgs[0]["data"], msgs[0]["data"][:3000]
    assert queue_empty(sl)


def test_dns_failure_defers(sluice_factory, dns, mx_port, cleanup_sinks):
    """A domain whose nameserver does not answer: deferred (4.4.3), not bounced."""
    sl = dns_sluice(sluice_factory, dns, mx_port, extra="retry_schedule = 1h\n")
    cleanup_sinks.append(sl)
    qid, _ = submit(sl, "x@dead.sluice.test", token())
    assert wait_for(lambda: rcpt_states(sl, qid)["x@dead.sluice.test"]["attempts"] >= 1,
                    timeout=60), sl.log_tail(30)
    r = rcpt_states(sl, qid)["x@dead.sluice.test"]
    assert r["state"] == "pending" and r["last_reply"].startswith("4"), r
    assert sl.sink.messages == []


def test_dane_verified_delivery(sluice_factory, dns, peers, cleanup_sinks):
    """dnssec.sluice.test is signed and publishes TLSA 3 1 1 for its MX: sluice requires
    TLS, verifies the certificate against the TLSA record and delivers."""
    made, make = peers
    port = 2525  # the zone has TLSA records for _25 and _2525
    info = dns.info
    p = make("127.0.0.61", port, tls_cert=info["cert"], tls_key=info["key"])
    sl = dns_sluice(sluice_factory, dns, port, dnssec=True)
    cleanup_sinks.append(sl)
    submit(sl, "d@dnssec.sluice.test", token())
    msgs = p.wait_messages(1, timeout=30)
    assert len(msgs) == 1 and msgs[0]["tls"], sl.log_tail(30)
    assert "verified=DANE-EE" in sl.log_text(), sl.log_tail(30)


def test_dane_mismatch_never_plaintext(sluice_factory, dns, peers, tmp_path, cleanup_sinks):
    """The MX presents a certificate the TLSA record does not match: deferred, nothing
    delivered, no plaintext retry."""
    import subprocess
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=other"],
                   check=True, capture_output=True, timeout=60)
    made, make = peers
    p = make("127.0.0.61", 2525, tls_cert=str(cert), tls_key=str(key))
    sl = dns_sluice(sluice_factory, dns, 2525, dnssec=True, extra="retry_schedule = 1h\n")
    cleanup_sinks.append(sl)
    qid, _ = submit(sl, "d@dnssec.sluice.test", token())
    assert wait_for(lambda: rcpt_states(sl, qid)["d@dnssec.sluice.test"]["attempts"] >= 1,
                    timeout=30), sl.log_tail(30)
    time.sleep(1)
    assert p.messages == []


def test_bogus_zone_defers(sluice_factory, dns, mx_port, peers, cleanup_sinks):
    """A zone whose signatures do not validate: deferred; its MX never gets the mail."""
    made, make = peers
    p = make("127.0.0.71", mx_port)
    sl = dns_sluice(sluice_factory, dns, mx_port, dnssec=True, extra="retry_schedule = 1h\n")
    cleanup_sinks.append(sl)
    qid, _ = submit(sl, "b@bogus.sluice.test", token())
    assert wait_for(lambda: rcpt_states(sl, qid)["b@bogus.sluice.test"]["attempts"] >= 1,
                    timeout=30), sl.log_tail(30)
    assert rcpt_states(sl, qid)["b@bogus.sluice.test"]["last_reply"].startswith("4")
    assert p.messages == []


def test_ipv6_only_mx(sluice_factory, dns, mx_port, peers, cleanup_sinks):
    """An MX with only an AAAA record (::1) is reached over IPv6."""
    from sluicelib import have_ipv6
    if not have_ipv6():
        pytest.skip("no IPv6 loopback on this machine")
    made, make = peers
    p = make("::1", mx_port)
    sl = dns_sluice(sluice_factory, dns, mx_port)
    cleanup_sinks.append(sl)
    submit(sl, "v@v6only.sluice.test", token())
    msgs = p.wait_messages(1, timeout=30)
    assert len(msgs) == 1 and msgs[0]["peer"] == "::1", (msgs, sl.log_tail(20))
    assert "[::1]" in sl.log_text()


@pytest.mark.parametrize("pref", ["ipv4", "ipv6"])
def test_route_host_by_name_family_order(sluice_factory, dns, mx_port, peers, cleanup_sinks,
                                         pref):
    """A route's host given by name: its A and AAAA records are tried in ip_preference
    order, like an MX host's.  mx1.multi has 127.0.0.11 and ::1; only the address of the
    family tried second listens, so delivery shows both the order and the fallback."""
    from sluicelib import have_ipv6
    if not have_ipv6():
        pytest.skip("no IPv6 loopback on this machine")
    made, make = peers
    second = "::1" if pref == "ipv4" else "127.0.0.11"
    first = "127.0.0.11" if pref == "ipv4" else "::1"
    p = make(second, mx_port)
    sl = dns_sluice(sluice_factory, dns, mx_port, extra=f"ip_preference = {pref}\n",
                    routes=f"[route esp]\ndomains = example.org\n"
                           f"host = mx1.multi.sluice.test:{mx_port}\ntls = none\n")
    cleanup_sinks.append(sl)
    submit(sl, "r@example.org", token())
    msgs = p.wait_messages(1, timeout=30)
    assert len(msgs) == 1, sl.log_tail(30)
    sent_line = f"relay=mx1.multi.sluice.test[{second}]:{mx_port} status=sent"
    assert wait_for(lambda: sent_line in sl.log_text(), timeout=10), sl.log_tail(30)
    log = sl.log_text()
    tried = log.index(f"connect failed relay=mx1.multi.sluice.test[{first}]")
    assert tried < log.index(sent_line), sl.log_tail(30)


def test_route_host_dns_failure_defers(sluice_factory, dns, mx_port, peers, cleanup_sinks):
    """A route host whose name cannot be resolved (SERVFAIL): deferred with 4.4.3 naming
    the host; nothing is bounced."""
    sl = dns_sluice(sluice_factory, dns, mx_port, extra="retry_schedule = 1h\n",
                    routes="[route esp]\ndomains = example.org\n"
                           "host = mx.dead.sluice.test:2525\ntls = none\n")
    cleanup_sinks.append(sl)
    qid, _ = submit(sl, "r@example.org", token())
    assert wait_for(lambda: rcpt_states(sl, qid)["r@example.org"]["attempts"] >= 1,
                    timeout=30), sl.log_tail(30)
    r = rcpt_states(sl, qid)["r@example.org"]
    assert r["state"] == "pending", r
    assert r["last_reply"].startswith("451 4.4.3"), r
    assert "mx.dead.sluice.test" in r["last_reply"], r
    assert sl.sink.messages == []
