"""The Prometheus endpoint (metrics_listen), end to end.

A real sluiced with `metrics_listen` on a loopback port, real SMTP clients
(smtplib), a real remote MX (mxpeer on loopback, through a [route]); /metrics is
fetched with curl and read with python3-prometheus-client's own parser
(prometheus_client.parser.text_string_to_metric_families), so what sluice writes
is what Prometheus reads.  Counts are compared before and after, and must move by
exactly what the test did, nothing else.
"""
import re
import smtplib
import socket
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mxpeer import MXPeer
from sluicelib import (ACME_PW, BRUTE_PW, Raw, client_tls_context, free_port, message, session,
                       token, wait_for)
from test_contain import login, seed_baseline, send

pytestmark = pytest.mark.timeout(180)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def curl(url, *args, timeout=20):
    """(status, headers dict with lower-case names, body) of one curl request."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", *args, url],
                       capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class Scrape:
    """One scrape, parsed by prometheus_client: value(sample name, **labels)."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.families = {}
        for fam in text_string_to_metric_families(text):
            self.families[fam.name] = fam
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, f"sample {key} twice"
                self.samples[key] = s.value

    def value(self, name, **labels):
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in\n{self.text}"
        return self.samples[key]

    def series(self, name):
        """{frozenset(labels): value} of every sample called name."""
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}


def metrics_url(sl):
    return f"http://127.0.0.1:{sl.metrics_port}/metrics"


def scrape(sl):
    status, headers, body = curl(metrics_url(sl))
    assert status == 200, (status, body)
    assert headers["content-type"] == CONTENT_TYPE, headers
    return Scrape(body.decode())


def metrics_sluice(sluice_factory, extra_global="", extra_sections="", start=True):
    port = free_port()
    sl = sluice_factory(start=False,
                        extra_global=f"metrics_listen = 127.0.0.1:{port}\n{extra_global}",
                        extra_sections=extra_sections)
    sl.metrics_port = port
    if start:
        sl.start()
        assert wait_for(lambda: _answers(sl), timeout=10), sl.log_tail(30)
    return sl


def _answers(sl):
    try:
        socket.create_connection(("127.0.0.1", sl.metrics_port), timeout=0.5).close()
        return True
    except OSError:
        return False


def deltas(before, after, name):
    """{labels: after - before} of every series of name that moved."""
    b, a = before.series(name), after.series(name)
    assert set(a) == set(b), (name, set(a) ^ set(b))
    return {k: a[k] - b[k] for k in a if a[k] != b[k]}


def assert_clean_exit(sl):
    """SIGTERM: exit 0 (under ASan, no leak report either)."""
    rc = sl.stop()
    assert rc == 0, (rc, sl.log_tail(40))
    assert "Sanitizer" not in sl.log_text(), sl.log_tail(60)


def L(**kw):
    return frozenset(kw.items())


@pytest.fixture
def peer():
    p = MXPeer(host="127.0.0.1", port=free_port())
    p.start()
    yield p
    p.stop()


def test_counts_move_by_what_was_done(sluice_factory, peer):
    """One message accepted and delivered to the MX, one MAIL refused for the
    sender's domain, one wrong password, one relay connection from outside the
    trusted networks, one implicit-TLS session: each counter moves by exactly that."""
    sl = metrics_sluice(
        sluice_factory,
        extra_global="delivery = on\nretry_schedule = 1s\ntimeout_connect = 5s\n"
                     "connection_cache_time = 0\n",
        extra_sections=f"[route peer]\ndomains = *\nhost = {peer.host}:{peer.port}\n"
                       "tls = none\n")
    before = scrape(sl)
    assert before.value("sluice_build_info", version="0.1.0") == 1
    started = before.value("sluice_start_time_seconds")
    assert abs(started - time.time()) < 120, started

    # accepted, and delivered to the MX
    tok = token()
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=30) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        c.sendmail("alice@acme.example", ["bob@example.org"],
                   message(tok, rcpt="bob@example.org"))
    assert peer.wait_messages(1, timeout=30), sl.log_tail(30)
    # refused at MAIL: a domain acme has not verified
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=30) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        code, text = c.mail("alice@unverified.example")
        assert code == 553 and b"5.7.1" in text, (code, text)
    # a wrong password, once (smtplib.login would try PLAIN, then LOGIN)
    with session(sl, "submission", auth=False) as c:
        r = c.auth_plain("brute", BRUTE_PW + "x")
        assert r.code == 535, r
    # the relay port from an address outside every trusted network
    r = Raw(sl.ports["relay"], source="127.0.0.1", read_greeting=True)
    assert r.greeting.code == 554, r.greeting
    r.close()
    # implicit TLS: greeting, QUIT
    with smtplib.SMTP_SSL("127.0.0.1", sl.ports["submissions"], timeout=30,
                          context=client_tls_context()) as c:
        assert c.noop()[0] == 250

    def settled():
        s = scrape(sl)
        done = (s.value("sluice_delivery_recipients_total", outcome="delivered") -
                before.value("sluice_delivery_recipients_total", outcome="delivered") == 1 and
                all(v == 0 for v in s.series("sluice_smtp_sessions").values()) and
                s.value("sluice_delivery_connections") == 0 and
                s.value("sluice_queue_messages") == 0)
        return s if done else None

    after = wait_for(settled, timeout=30, interval=0.3)
    assert after, scrape(sl).text
    assert deltas(before, after, "sluice_smtp_sessions_total") == {
        L(listener="submission"): 3, L(listener="relay"): 1, L(listener="smtps"): 1}
    assert deltas(before, after, "sluice_smtp_auth_successes_total") == {L(): 2}
    assert deltas(before, after, "sluice_smtp_auth_failures_total") == {
        L(reason="credentials"): 1}
    assert deltas(before, after, "sluice_smtp_messages_accepted_total") == {L(): 1}
    assert deltas(before, after, "sluice_smtp_recipients_accepted_total") == {L(): 1}
    assert deltas(before, after, "sluice_smtp_refusals_total") == {
        L(reason="sender"): 1, L(reason="relay-denied"): 1}
    assert deltas(before, after, "sluice_delivery_recipients_total") == {
        L(outcome="delivered"): 1}
    # acme.example has its two keys (domain add): one signature of each
    assert deltas(before, after, "sluice_dkim_signatures_total") == {
        L(algorithm="rsa-sha256"): 1, L(algorithm="ed25519-sha256"): 1}
    assert deltas(before, after, "sluice_dkim_failures_total") == {}
    assert after.value("sluice_spool_commits_total") > before.value("sluice_spool_commits_total")
    assert after.value("sluice_spool_fsyncs_total") >= before.value("sluice_spool_fsyncs_total")
    assert deltas(before, after, "sluice_contain_changes_total") == {}
    assert deltas(before, after, "sluice_scan_results_total") == {}  # no scanners here
    assert after.value("sluice_start_time_seconds") == started
    # the types Prometheus reads
    assert after.families["sluice_smtp_sessions"].type == "gauge"
    assert after.families["sluice_smtp_refusals"].type == "counter"
    assert after.families["sluice_queue_messages"].type == "gauge"
    assert after.families["sluice_contain_changes"].type == "counter"
    assert_clean_exit(sl)


def test_http_paths_methods_and_bounds(sluice_factory):
    """404 off /metrics, 405 with Allow for other methods, HEAD like GET without
    a body; an oversize request is refused and a stalled one timed out, and the
    daemon serves on."""
    sl = metrics_sluice(sluice_factory)
    base = f"http://127.0.0.1:{sl.metrics_port}"
    for path in ("/", "/metrics/", "/metricsx", "/Metrics", "/api/metrics", "/%6detrics"):
        status, _, _ = curl(base + path)
        assert status == 404, path
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = curl(base + "/metrics", "-X", method)
        assert status == 405, method
        assert headers.get("allow") == "GET, HEAD", (method, headers)
    # HEAD: the headers of a GET, no body (raw: curl -I prints the headers twice)
    with socket.create_connection(("127.0.0.1", sl.metrics_port), timeout=10) as s:
        s.sendall(b"HEAD /metrics HTTP/1.0\r\n\r\n")
        got = b""
        for _ in range(100):
            d = s.recv(65536)
            if not d:
                break
            got += d
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n"), got
    assert f"Content-Type: {CONTENT_TYPE}".encode() in head and body == b"", got
    status, _, body = curl(base + "/metrics?name[]=x")  # the path decides, not the query
    assert status == 200 and b"sluice_build_info" in body
    # request line and headers over the bound (8 KiB): refused, not served
    status, _, _ = curl(base + "/metrics", "-H", "X-Big: " + "a" * 20000)
    assert status in (400, 413, 431), status
    # a body over the bound (1 KiB)
    status, _, _ = curl(base + "/metrics", "-X", "POST", "--data-binary", "x" * 4096)
    assert status == 413, status
    # a request that never ends is cut off after the timeout (10 s)
    s = socket.create_connection(("127.0.0.1", sl.metrics_port), timeout=30)
    t0 = time.monotonic()
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    try:
        data = s.recv(4096)
        while data:
            data = s.recv(4096)
    except (ConnectionResetError, socket.timeout):
        pass
    elapsed = time.monotonic() - t0
    s.close()
    assert 5 <= elapsed <= 20, elapsed
    assert scrape(sl).value("sluice_build_info", version="0.1.0") == 1
    # a scrape left open when sluiced stops is closed with it
    idle = socket.create_connection(("127.0.0.1", sl.metrics_port), timeout=10)
    try:
        assert_clean_exit(sl)
    finally:
        idle.close()


def test_bad_metrics_listen_stops_start(sluice_factory):
    """An address that does not parse is a configuration error at start."""
    sl = sluice_factory(start=False, extra_global="metrics_listen = localhost:notaport\n")
    p = subprocess.run([sl.bin["sluiced"], "-c", str(sl.conf)], capture_output=True,
                       timeout=30, cwd=str(sl.root))
    assert p.returncode != 0
    assert b"metrics_listen=localhost:notaport" in p.stderr, p.stderr


def test_off_when_unset(sluice_factory):
    """No metrics_listen: no endpoint, nothing listening, mail unaffected."""
    sl = sluice_factory()
    assert "listener=metrics" not in sl.log_text()


def test_containment_changes_counted(sluice_factory):
    """A compromise (test_contain.py's): every level sluiced raises, logged with
    its reasons, is counted in sluice_contain_changes_total by kind and level,
    exactly as often as it is logged; the subjects gauge shows the login
    suspended until the operator resumes it, and the release counts as level none."""
    sl = metrics_sluice(sluice_factory, extra_global="contain_throttle_interval = 1s\n",
                        start=False)
    seed_baseline(sl, "198.51.100.0/24")  # the thief logs in from 127.0.0.1
    sl.start()
    before = scrape(sl)
    refused = None
    c = login(sl)
    try:
        for i in range(40):
            rcpts = [f"user{k}@victim{i * 5 + k}.example" for k in range(5)]
            for _ in range(3):
                code, text = send(sl, rcpts, token(), c)
                if code != 451:
                    break
                time.sleep(1.1)
            if code != 250:
                refused = (code, text)
                break
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass
    assert refused is not None and refused[0] == 550, (refused, sl.log_tail(20))
    log = sl.log_text()
    logged = {}
    for kind, level in re.findall(r'contain (user|tenant)="[^"]*" level=(\w+)', log):
        key = L(kind="credential" if kind == "user" else "tenant", level=level)
        logged[key] = logged.get(key, 0) + 1
    after = scrape(sl)
    moved = deltas(before, after, "sluice_contain_changes_total")
    assert moved == logged, (moved, logged)
    assert moved.get(L(kind="credential", level="hold")) == 1, moved
    assert moved.get(L(kind="credential", level="suspend")) == 1, moved
    assert after.value("sluice_contain_subjects", kind="credential", level="suspend") == 1
    assert deltas(before, after, "sluice_smtp_refusals_total").get(L(reason="contained"), 0) >= 1
    # the operator resumes the login; sluiced notices at its next MAIL
    sl.cli("credential", "resume", "acme")
    code, text = send(sl, ["friend@customer1.example"], token())
    assert code == 250, text
    last = scrape(sl)
    assert deltas(after, last, "sluice_contain_changes_total") == {
        L(kind="credential", level="none"): 1}
    assert last.value("sluice_contain_subjects", kind="credential", level="suspend") == 0
    assert_clean_exit(sl)


def test_scanner_down_counted(sluice_factory):
    """clamd down (nothing listens on its port) with scan_fail = closed: the message
    gets 451 4.3.0, clamd's outcome is counted as failed, the verdict as tempfail and
    the refusal as scan; nothing else moves."""
    sl = metrics_sluice(sluice_factory,
                        extra_global=f"scan_clamd = 127.0.0.1:{free_port()}\n"
                                     "scan_clamd_timeout = 3s\nscan_fail = closed\n")
    before = scrape(sl)
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=30) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("alice@acme.example", ["bob@example.org"],
                       message(token(), rcpt="bob@example.org"))
        assert e.value.smtp_code == 451 and e.value.smtp_error.startswith(b"4.3.0")
    after = scrape(sl)
    assert deltas(before, after, "sluice_scan_results_total") == {
        L(scanner="clamd", outcome="failed"): 1}
    assert deltas(before, after, "sluice_scan_verdicts_total") == {L(action="tempfail"): 1}
    assert deltas(before, after, "sluice_smtp_refusals_total") == {L(reason="scan"): 1}
    assert deltas(before, after, "sluice_smtp_messages_accepted_total") == {}
    assert_clean_exit(sl)


def test_malformed_requests_leave_it_serving(sluice_factory):
    """evhttp (libevent's parser, not sluice's) answers or drops malformed requests;
    sluiced serves on and stops cleanly."""
    sl = metrics_sluice(sluice_factory)
    bad = [b"\r\n\r\n", b"GET\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n",
           b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
           b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET /" + b"m" * 20000 + b" HTTP/1.0\r\n\r\n",
           b"GET /metrics\x00 HTTP/1.0\r\n\r\n", b"\xff\xfe\xfd" * 100 + b"\r\n\r\n",
           b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 2000 + b"\r\n"]
    for req in bad:
        with socket.create_connection(("127.0.0.1", sl.metrics_port), timeout=15) as s:
            try:
                s.sendall(req)
                s.shutdown(socket.SHUT_WR)
                for _ in range(100):
                    if not s.recv(65536):
                        break
            except (ConnectionResetError, BrokenPipeError, socket.timeout):
                pass
        assert sl.running(), (req[:40], sl.log_tail(20))
    assert scrape(sl).value("sluice_build_info", version="0.1.0") == 1
    assert_clean_exit(sl)
