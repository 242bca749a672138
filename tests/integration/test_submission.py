"""Mail submission with real clients: smtplib, swaks, curl, msmtp; relay and IPv6."""
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from sluicelib import (ACME_PW, HOSTNAME, TRUSTED_SRC, client_tls_context, header_values,
                       message, queued_id, split_message, token)

LOCAL = "client.sluice.test"



def check_stored(sl, qid, tok, body_sent, *, authenticated_user="acme", tls=True,
                 envelope_from="alice@acme.example"):
    """The stored message: body byte-for-byte, Received (TLS, auth), Message-ID, Date."""
    raw = sl.queue_raw(qid)
    assert tok.encode() in raw, raw[:2000]
    head, body = split_message(raw)
    _, sent_body = split_message(body_sent)
    assert body == sent_body, f"body changed in the spool:\nsent {sent_body!r}\nstored {body!r}"
    received = header_values(head, "Received")
    assert received, f"no Received header in {head!r}"
    top = received[0]
    assert HOSTNAME.encode() in top, top
    if tls:
        assert re.search(rb"TLSv1\.[23]", top), f"no TLS version in Received: {top!r}"
    if authenticated_user:
        assert b"Authenticated sender: " + authenticated_user.encode() in top, top
    assert len(header_values(head, "Message-ID")) == 1, head
    assert len(header_values(head, "Date")) == 1, head
    show = sl.queue_show(qid)
    assert show.get("id", qid).lower() == qid.lower(), show
    assert envelope_from in str(show.get("sender", show)), show
    return raw


def smtplib_submit(client, tok, sender="alice@acme.example", rcpts=("bob@example.org",)):
    msg = message(tok, sender=sender, rcpt=rcpts[0])
    client.ehlo_or_helo_if_needed()
    code, resp = client.mail(sender)
    assert code == 250, resp
    for r in rcpts:
        code, resp = client.rcpt(r)
        assert code == 250, resp
    code, resp = client.data(msg)
    assert code == 250, resp
    assert resp.startswith(b"2.0.0 Ok: queued as "), resp
    qid = queued_id(resp)
    assert qid and re.fullmatch(r"[0-9a-fA-F]{16}", qid), resp
    return qid, msg


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_submission_starttls_auth(sluice, mech):
    tok = token()
    with smtplib.SMTP("127.0.0.1", sluice.ports["submission"], local_hostname=LOCAL,
                      timeout=15) as c:
        code, banner = c.ehlo()
        assert code == 250
        assert c.has_extn("starttls")
        assert not c.has_extn("auth"), "AUTH must not be offered before TLS"
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes"):
            assert c.has_extn(ext), (ext, c.esmtp_features)
        assert c.esmtp_features["size"] == str(1024 * 1024), c.esmtp_features
        c.starttls(context=client_tls_context())
        c.ehlo()
        assert not c.has_extn("starttls")
        auths = c.esmtp_features.get("auth", "").upper().split()
        assert "PLAIN" in auths and "LOGIN" in auths, c.esmtp_features
        c.user, c.password = "acme", ACME_PW
        code, resp = c.auth(mech, c.auth_plain if mech == "PLAIN" else c.auth_login)
        assert code == 235, resp
        qid, msg = smtplib_submit(c, tok)
    check_stored(sluice, qid, tok, msg)


def test_greeting_banner(sluice):
    with smtplib.SMTP(local_hostname=LOCAL, timeout=15) as c:
        code, msg = c.connect("127.0.0.1", sluice.ports["submission"])
        assert code == 220
        assert msg == f"{HOSTNAME} ESMTP sluice".encode(), msg


def test_submissions_implicit_tls(sluice):
    tok = token()
    with smtplib.SMTP_SSL("127.0.0.1", sluice.ports["submissions"], local_hostname=LOCAL,
                          timeout=15, context=client_tls_context()) as c:
        c.ehlo()
        assert not c.has_extn("starttls"), "no STARTTLS inside implicit TLS"
        c.login("acme", ACME_PW)
        qid, msg = smtplib_submit(c, tok, rcpts=("bob@example.org", "carol@example.net"))
    check_stored(sluice, qid, tok, msg)
    show = sluice.queue_show(qid)
    assert "carol@example.net" in str(show), show


def test_alt_submission_2525(sluice):
    tok = token()
    with smtplib.SMTP("127.0.0.1", sluice.ports["alt"], local_hostname=LOCAL, timeout=15) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        qid, msg = smtplib_submit(c, tok)
    check_stored(sluice, qid, tok, msg)


def test_message_id_and_date_kept_when_present(sluice):
    tok = token()
    mid = f"<{tok}@acme.example>"
    msg = message(tok, extra_headers=[f"Message-ID: {mid}",
                                      "Date: Mon, 23 Nov 2026 10:00:00 +0000"])
    with smtplib.SMTP("127.0.0.1", sluice.ports["submission"], local_hostname=LOCAL,
                      timeout=15) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        assert c.mail("alice@acme.example")[0] == 250
        assert c.rcpt("bob@example.org")[0] == 250
        code, resp = c.data(msg)
        assert code == 250, resp
    head, _ = split_message(sluice.queue_raw(queued_id(resp)))
    assert header_values(head, "Message-ID") == [mid.encode()], head
    assert header_values(head, "Date") == [b"Mon, 23 Nov 2026 10:00:00 +0000"], head


def test_dot_stuffing_and_8bit_body(sluice):
    """Lines starting with '.', 8-bit UTF-8 text and long lines survive unchanged."""
    tok = token()
    body = [f"start {tok}", ".leading dot", "..two dots", ".", " .", "Grüße, ünïcødé ✓",
            "x" * 990, f"END {tok}"]
    msg = message(tok, body_lines=body,
                  extra_headers=["MIME-Version: 1.0",
                                 "Content-Type: text/plain; charset=utf-8",
                                 "Content-Transfer-Encoding: 8bit"])
    with smtplib.SMTP("127.0.0.1", sluice.ports["submission"], local_hostname=LOCAL,
                      timeout=15) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        assert c.mail("alice@acme.example", ["BODY=8BITMIME"])[0] == 250
        assert c.rcpt("bob@example.org")[0] == 250
        code, resp = c.data(msg)  # smtplib dot-stuffs
        assert code == 250, resp
    check_stored(sluice, queued_id(resp), tok, msg)


# ---- other clients -------------------------------------------------------------


def _need(tool):
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed")
    return path


def _run(cmd, timeout=30, input=None):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


def _find_one(sl, tok):
    ids = sl.find_token(tok)
    assert len(ids) == 1, f"expected one queued message with {tok}, found {ids}"
    return ids[0]


@pytest.mark.parametrize("mode", ["starttls-587", "starttls-2525",
                                  "implicit-465"])
def test_swaks(sluice, mode):
    _need("swaks")
    tok = token()
    port = {"starttls-587": sluice.ports["submission"], "starttls-2525": sluice.ports["alt"],
            "implicit-465": sluice.ports["submissions"]}[mode]
    tls = ["--tlsc"] if mode == "implicit-465" else ["--tls"]
    r = _run(["swaks", "--server", f"127.0.0.1:{port}", *tls, "--auth", "PLAIN",
              "--auth-user", "acme", "--auth-password", ACME_PW,
              "--from", "alice@acme.example", "--to", "bob@example.org",
              "--helo", LOCAL, "--header", f"Subject: swaks {tok}",
              "--body", f"swaks body {tok}", "--timeout", "15"])
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, out
    qid = queued_id(out)
    assert qid, out
    raw = sluice.queue_raw(qid)
    assert f"swaks body {tok}".encode() in raw
    assert b"Authenticated sender: acme" in raw


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_curl(sluice, scheme, tmp_path):
    _need("curl")
    tok = token()
    msgfile = tmp_path / "msg.eml"
    msg = message(tok)
    msgfile.write_bytes(msg)
    if scheme == "smtp":
        url = f"smtp://127.0.0.1:{sluice.ports['submission']}/{LOCAL}"
        extra = ["--ssl-reqd"]
    else:
        url = f"smtps://127.0.0.1:{sluice.ports['submissions']}/{LOCAL}"
        extra = []
    r = _run(["curl", "-sS", "-v", "-k", *extra, "--max-time", "20", "--url", url,
              "--user", f"acme:{ACME_PW}", "--mail-from", "alice@acme.example",
              "--mail-rcpt", "bob@example.org", "--upload-file", str(msgfile)])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    qid = queued_id(err) or _find_one(sluice, tok)
    check_stored(sluice, qid, tok, msg)


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_msmtp(sluice, mode, tmp_path):
    _need("msmtp")
    tok = token()
    port = sluice.ports["submission"] if mode == "starttls" else sluice.ports["submissions"]
    conf = tmp_path / "msmtprc"
    conf.write_text(f"""defaults
timeout 15
account sluice
host 127.0.0.1
port {port}
domain {LOCAL}
tls on
tls_starttls {'on' if mode == 'starttls' else 'off'}
tls_certcheck off
auth plain
user acme
password {ACME_PW}
from alice@acme.example
account default : sluice
""")
    os.chmod(conf, 0o600)
    msg = message(tok)
    r = _run(["msmtp", "-C", str(conf), "--debug", "bob@example.org"], input=msg)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, out
    qid = queued_id(out) or _find_one(sluice, tok)
    check_stored(sluice, qid, tok, msg)


# ---- relay (trusted network) and IPv6 --------------------------------------------


def test_relay_from_trusted_network_without_auth(sluice):
    tok = token()
    with smtplib.SMTP("127.0.0.1", sluice.ports["relay"], local_hostname=LOCAL, timeout=15,
                      source_address=(TRUSTED_SRC, 0)) as c:
        c.ehlo()
        assert not c.has_extn("auth"), "the relay listener offers no AUTH"
        qid, msg = smtplib_submit(c, tok)
    raw = check_stored(sluice, qid, tok, msg, authenticated_user=None, tls=False)
    assert TRUSTED_SRC.encode() in header_values(split_message(raw)[0], "Received")[0]


def test_relay_from_trusted_network_with_starttls(sluice):
    tok = token()
    with smtplib.SMTP("127.0.0.1", sluice.ports["relay"], local_hostname=LOCAL, timeout=15,
                      source_address=(TRUSTED_SRC, 0)) as c:
        c.starttls(context=client_tls_context())
        qid, msg = smtplib_submit(c, tok)
    check_stored(sluice, qid, tok, msg, authenticated_user=None, tls=True)


def test_relay_sender_must_be_tenant_domain(sluice):
    with smtplib.SMTP("127.0.0.1", sluice.ports["relay"], local_hostname=LOCAL, timeout=15,
                      source_address=(TRUSTED_SRC, 0)) as c:
        c.ehlo()
        code, resp = c.mail("mallory@other.example")
        assert code == 553 and resp.startswith(b"5.7.1"), (code, resp)


def test_ipv6_submission(sluice):
    if not sluice.ipv6:
        pytest.skip("no IPv6 loopback")
    tok = token()
    with smtplib.SMTP("::1", sluice.ports["submission"], local_hostname=LOCAL, timeout=15) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        qid, msg = smtplib_submit(c, tok)
    raw = check_stored(sluice, qid, tok, msg)
    assert b"::1" in header_values(split_message(raw)[0], "Received")[0]


def test_queue_list_json_shape(sluice):
    tok = token()
    with smtplib.SMTP("127.0.0.1", sluice.ports["submission"], local_hostname=LOCAL,
                      timeout=15) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        qid, _ = smtplib_submit(c, tok, rcpts=("a@example.org", "b@example.org"))
    entries = [m for m in sluice.queue_list() if m["id"].lower() == qid.lower()]
    assert len(entries) == 1, sluice.queue_list()
    e = entries[0]
    assert e.get("sender") == "alice@acme.example", e
    show = sluice.queue_show(qid)
    assert "a@example.org" in str(show) and "b@example.org" in str(show), show
