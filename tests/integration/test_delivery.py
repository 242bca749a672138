"""Delivery: from sluice's queue to a remote MX or an upstream ESP, with retries and DSNs.

The remote side is aiosmtpd (mxpeer.MXPeer) on loopback, reached through a
[route] (these tests need no DNS; test_delivery_dns.py covers MX lookups).
Each test makes its own sluiced with a short retry schedule; every wait is
bounded.
"""
import email
import email.policy
import os
import smtplib
import subprocess
import time

import pytest

from mxpeer import MXPeer
from sluicelib import (ACME_PW, client_tls_context, free_port, message, queued_id, split_message,
                       token, wait_for)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def peer_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("peer-tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj",
                    "/CN=mx.peer.sluice.test", "-addext",
                    "subjectAltName=DNS:mx.peer.sluice.test"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.fixture
def peers():
    made = []

    def make(host="127.0.0.1", port=None, **start):
        p = MXPeer(host=host, port=port or free_port())
        made.append(p)
        return p, start

    yield make
    for p in made:
        p.stop()


def delivering_sluice(sluice_factory, peer, *, tls="opportunistic", extra="", route_extra="",
                      domains="*", retry="1s", lifetime="5d"):
    """A sluiced whose every recipient domain routes to peer."""
    return sluice_factory(
        extra_global=f"delivery = on\nretry_schedule = {retry}\nmax_queue_lifetime = {lifetime}\n"
                     f"timeout_connect = 5s\ntimeout_greeting = 10s\n"
                     f"timeout_remote_command = 10s\ntimeout_data_end = 20s\n{extra}",
        extra_sections=f"[route peer]\ndomains = {domains}\nhost = {peer.host}:{peer.port}\n"
                       f"tls = {tls}\n{route_extra}\n")


def submit(sl, rcpts, tok, sender="alice@acme.example", body=None, port_key="submission"):
    """smtplib over 587 with STARTTLS and AUTH; returns the queue id."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    data = body if body is not None else message(tok, sender=sender, rcpt=", ".join(rcpts))
    with smtplib.SMTP("127.0.0.1", sl.ports[port_key], timeout=60) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        c.mail(sender)
        for r in rcpts:
            code, _ = c.rcpt(r)
            assert code == 250
        code, reply = c.data(data)
        assert code == 250, reply
    qid = queued_id(reply)
    assert qid, reply
    return qid, data


def queue_empty(sl):
    return wait_for(lambda: sl.queue_list() == [], timeout=20)


def rcpt_states(sl, qid):
    return {r["address"]: r for r in sl.queue_show(qid)["recipients"]}


def test_route_delivery_end_to_end(sluice_factory, peers, peer_cert):
    """smtplib on 587 -> sluice -> route with STARTTLS -> peer: envelope, headers and body
    bytes as submitted, TLS used, the queue empty afterwards, a log line per recipient."""
    peer, _ = peers()
    peer.start(tls_cert=peer_cert[0], tls_key=peer_cert[1])
    sl = delivering_sluice(sluice_factory, peer)
    tok = token()
    qid, data = submit(sl, ["bob@example.org", "carol@example.net"], tok)
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1, sl.log_tail(30)
    m = msgs[0]
    assert m["mail_from"] == "alice@acme.example"
    assert sorted(m["rcpts"]) == ["bob@example.org", "carol@example.net"]
    assert m["tls"] in ("TLSv1.2", "TLSv1.3"), m
    head, body = split_message(m["data"])
    _, sub_body = split_message(data)
    assert body == sub_body  # body bytes untouched
    assert tok.encode() in head
    assert b"Received: from" in head and b"by mx.sluice.test" in head
    assert m["data"].count(b"\r\n") == m["data"].count(b"\n")  # CRLF only
    assert queue_empty(sl), sl.queue_list()
    log = sl.log_text()
    assert f"queue={qid.lower()} deliver to=<bob@example.org>" in log
    assert "status=sent" in log
    # sent exactly once
    time.sleep(1.5)
    assert len(peer.messages) == 1


def test_one_recipient_refused_others_delivered_once_and_dsn(sluice_factory, peers, peer_cert):
    """Three recipients at one domain, one refused with 550: the other two are delivered
    in one transaction and never sent again; the sender gets one RFC 3464 DSN naming the
    refused recipient, from <>."""
    peer, _ = peers()
    peer.rcpt_reply["nobody@example.org"] = "550 5.1.1 No such user here"
    peer.start(tls_cert=peer_cert[0], tls_key=peer_cert[1])
    sl = delivering_sluice(sluice_factory, peer)
    tok = token()
    qid, _ = submit(sl, ["a@example.org", "nobody@example.org", "b@example.org"], tok)
    msgs = peer.wait_messages(2, timeout=20)
    assert len(msgs) == 2, (msgs, sl.log_tail(30))
    orig = [m for m in msgs if m["mail_from"] == "alice@acme.example"]
    dsn = [m for m in msgs if m["mail_from"] == ""]
    assert len(orig) == 1 and sorted(orig[0]["rcpts"]) == ["a@example.org", "b@example.org"]
    assert len(dsn) == 1 and dsn[0]["rcpts"] == ["alice@acme.example"]
    rep = email.message_from_bytes(dsn[0]["data"], policy=email.policy.default)
    assert rep.get_content_type() == "multipart/report"
    assert rep.get_param("report-type") == "delivery-status"
    parts = list(rep.iter_parts())
    assert parts[1].get_content_type() == "message/delivery-status"
    status = parts[1].as_string()
    assert "Final-Recipient: rfc822; nobody@example.org" in status or \
        "Final-Recipient: rfc822;nobody@example.org" in status, status
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status
    assert "No such user here" in status
    assert tok in parts[2].as_string()  # the original headers come back
    assert queue_empty(sl)
    time.sleep(2.5)  # retries would have happened by now
    assert len(peer.messages) == 2


def test_greylisted_then_delivered(sluice_factory, peers, peer_cert):
    """A 451 at RCPT defers; `queue show` says attempts=1 and the reply; the retry after
    the (1 s) schedule delivers it once."""
    peer, _ = peers()
    peer.greylist = True
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, retry="3s")
    tok = token()
    qid, _ = submit(sl, "grey@example.org", tok)
    st = wait_for(lambda: (rcpt_states(sl, qid).get("grey@example.org") or {}).get("attempts"),
                  timeout=10)
    assert st == 1, sl.log_tail(20)
    r = rcpt_states(sl, qid)["grey@example.org"]
    assert r["state"] == "pending" and "451" in r["last_reply"] and r["next_attempt"]
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1 and msgs[0]["rcpts"] == ["grey@example.org"]
    assert queue_empty(sl)
    assert "status=deferred" in sl.log_text() and "status=sent" in sl.log_text()


def test_deferred_until_expiry_then_bounced(sluice_factory, peers):
    """A recipient that only ever gets 4xx bounces once the queue lifetime is over; the
    DSN says failed, with the last reply."""
    peer, _ = peers()
    peer.rcpt_reply["slow@example.org"] = "452 4.2.2 Mailbox full"
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, retry="1s", lifetime="4s", tls="none")
    tok = token()
    submit(sl, "slow@example.org", tok)
    msgs = peer.wait_messages(1, timeout=30)
    assert len(msgs) == 1 and msgs[0]["mail_from"] == "", sl.log_tail(30)
    text = msgs[0]["data"].decode(errors="replace")
    assert "slow@example.org" in text and "Action: failed" in text
    assert "Mailbox full" in text
    assert queue_empty(sl)


def test_no_dsn_for_null_sender(sluice_factory, peers):
    """A message from <> (relay listener, trusted network) that fails produces no DSN."""
    peer, _ = peers()
    peer.rcpt_reply["gone@example.org"] = "550 5.1.1 gone"
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none")
    from sluicelib import session
    with session(sl, "relay") as c:
        assert c.cmd("MAIL FROM:<>").code == 250
        assert c.cmd("RCPT TO:<gone@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        # From: is the tenant's: the null envelope sender still needs it aligned
        r = c.cmd("From: postmaster@acme.example\r\nSubject: x\r\n\r\nbounce me\r\n.")
        assert r.code == 250
    assert queue_empty(sl)
    assert "no dsn for the null sender" in sl.log_text()
    time.sleep(1)
    assert peer.messages == []


def test_esp_route_starttls_and_auth(sluice_factory, peers, peer_cert):
    """An upstream ESP on a 2525-style port requiring STARTTLS and AUTH: sluice logs in
    and the message arrives authenticated; a wrong password defers (nothing sent)."""
    peer, _ = peers()
    peer.start(tls_cert=peer_cert[0], tls_key=peer_cert[1], require_tls=True,
               auth={"relay-user": "relay-secret"})
    sl = delivering_sluice(sluice_factory, peer, tls="required",
                           route_extra="auth_user = relay-user\nauth_password = relay-secret\n")
    tok = token()
    submit(sl, "x@example.org", tok)
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1 and msgs[0]["auth"] == "relay-user" and msgs[0]["tls"]
    assert queue_empty(sl)

    bad = delivering_sluice(sluice_factory, peer, tls="required", retry="1h",
                            route_extra="auth_user = relay-user\nauth_password = wrong\n")
    qid, _ = submit(bad, "y@example.org", token())
    st = wait_for(lambda: (rcpt_states(bad, qid).get("y@example.org") or {}).get("attempts"),
                  timeout=15)
    assert st == 1
    r = rcpt_states(bad, qid)["y@example.org"]
    assert r["state"] == "pending" and r["last_reply"].startswith("4"), r
    assert len(peer.messages) == 1


def test_implicit_tls_route(sluice_factory, peers, peer_cert):
    peer, _ = peers()
    peer.start(tls_cert=peer_cert[0], tls_key=peer_cert[1], implicit_tls=True)
    sl = delivering_sluice(sluice_factory, peer, tls="implicit")
    submit(sl, "i@example.org", token())
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1, sl.log_tail(30)
    assert "tls relay=" in sl.log_text()
    assert queue_empty(sl)


def test_tls_required_but_not_offered_defers(sluice_factory, peers):
    """tls = required to a peer without STARTTLS: deferred with a 4.7.x reply, never sent
    in the clear."""
    peer, _ = peers()
    peer.start()  # no certificate: no STARTTLS
    sl = delivering_sluice(sluice_factory, peer, tls="required", retry="1h")
    qid, _ = submit(sl, "t@example.org", token())
    st = wait_for(lambda: (rcpt_states(sl, qid).get("t@example.org") or {}).get("attempts"),
                  timeout=15)
    assert st == 1
    r = rcpt_states(sl, qid)["t@example.org"]
    assert r["state"] == "pending" and " 4.7." in r["last_reply"], r
    assert peer.messages == []


def test_peer_closes_mid_transaction_then_recovers(sluice_factory, peers):
    """The peer drops the connection at DATA: deferred; once it behaves, delivered."""
    peer, _ = peers()
    peer.close_at = "DATA"
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none", retry="2s")
    qid, _ = submit(sl, "c@example.org", token())
    assert wait_for(lambda: peer.closed_mid >= 1, timeout=15)
    peer.close_at = None
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1
    assert queue_empty(sl)


def test_loop_detected_by_received_count(sluice_factory, peers):
    """More Received headers than max_received: bounced as a loop (5.4.6), not sent."""
    peer, _ = peers()
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none", extra="max_received = 5\n")
    tok = token()
    body = message(tok, rcpt="loop@example.org",
                   extra_headers=[f"Received: from h{i}.example by h{i + 1}.example"
                                  for i in range(6)])
    submit(sl, "loop@example.org", tok, body=body)
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1 and msgs[0]["mail_from"] == ""  # only the DSN
    assert b"5.4.6" in msgs[0]["data"]


def test_smtputf8_needed_but_not_offered_bounces(sluice_factory, peers):
    peer, _ = peers()
    peer.smtputf8 = False
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none")
    tok = token()
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=20) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        c.ehlo()
        c.mail("alice@acme.example", ["SMTPUTF8", "BODY=8BITMIME"])
        assert c.rcpt("jos\u00e9@example.org")[0] == 250
        code, reply = c.data(message(tok, rcpt="jose@example.org"))
        assert code == 250
    msgs = peer.wait_messages(1, timeout=20)
    assert len(msgs) == 1 and msgs[0]["mail_from"] == "", msgs
    assert b"5.6.7" in msgs[0]["data"]


def test_queue_hold_release_retry_bounce(sluice_factory, peers):
    """hold keeps a message back; release sends it at once; retry skips the wait of a
    deferred message; bounce fails it with a DSN."""
    peer, _ = peers()
    peer.rcpt_reply["later@example.org"] = "451 4.3.0 later"
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none", retry="1h")
    qid, _ = submit(sl, "later@example.org", token())
    assert wait_for(lambda: (rcpt_states(sl, qid)["later@example.org"]["attempts"]) >= 1,
                    timeout=15)
    # retry now: a second attempt well before the hour
    out = sl.cli("queue", "retry", qid)
    assert b"retry" in out.stdout
    assert wait_for(lambda: rcpt_states(sl, qid)["later@example.org"]["attempts"] >= 2,
                    timeout=15), sl.log_tail(20)
    sl.cli("queue", "hold", qid)
    assert sl.queue_show(qid)["held"] is True
    del peer.rcpt_reply["later@example.org"]
    sl.cli("queue", "retry", qid)
    time.sleep(2)
    assert peer.messages == []  # held
    sl.cli("queue", "release", qid)
    msgs = peer.wait_messages(1, timeout=15)
    assert len(msgs) == 1 and msgs[0]["rcpts"] == ["later@example.org"]
    assert queue_empty(sl)

    peer.rcpt_reply["stuck@example.org"] = "451 4.3.0 later"
    qid2, _ = submit(sl, "stuck@example.org", token())
    assert wait_for(lambda: rcpt_states(sl, qid2)["stuck@example.org"]["attempts"] >= 1,
                    timeout=15)
    sl.cli("queue", "bounce", qid2)
    msgs = peer.wait_messages(2, timeout=15)
    assert len(msgs) == 2 and msgs[1]["mail_from"] == ""
    assert b"stuck@example.org" in msgs[1]["data"]
    assert queue_empty(sl)


def test_restart_mid_delivery_loses_nothing(sluice_factory, peers):
    """sluiced killed (SIGKILL) while the peer stalls the DATA reply: after a restart the
    message is still queued and is delivered (possibly twice, never zero times)."""
    peer, _ = peers()
    peer.stall_at = ("DATA", 8)
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none", retry="1s")
    qid, _ = submit(sl, "k@example.org", token())
    assert wait_for(lambda: peer.connections >= 1, timeout=10)
    time.sleep(0.5)
    sl.kill9()
    peer.stall_at = None
    sl.start()
    msgs = peer.wait_messages(1, timeout=30)
    assert len(msgs) >= 1 and msgs[-1]["rcpts"] == ["k@example.org"]
    assert queue_empty(sl)


def test_stalled_server_times_out_and_defers(sluice_factory, peers):
    """The peer does not answer RCPT within timeout_remote_command: the attempt ends,
    the recipient is deferred with a 4xx, and sluiced keeps serving."""
    peer, _ = peers()
    peer.stall_at = ("RCPT", 90)
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none", retry="1h",
                           extra="timeout_remote_command = 2s\n")
    qid, _ = submit(sl, "s@example.org", token())
    # well before the peer would answer (90 s), the 2 s timeout has ended the attempt
    assert wait_for(lambda: rcpt_states(sl, qid)["s@example.org"]["attempts"] >= 1,
                    timeout=45), sl.log_tail(20)
    r = rcpt_states(sl, qid)["s@example.org"]
    assert r["state"] == "pending" and r["last_reply"].startswith("4"), r
    assert peer.messages == []


def test_queued_messages_share_a_connection(sluice_factory, peers):
    """Messages that wait for a busy destination (dest_concurrency = 1, the peer slow to
    answer the first DATA) leave over the connection already open: five messages, one
    connection (one EHLO)."""
    peer, _ = peers()
    peer.stall_at = ("DATA", 3)
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none", extra="dest_concurrency = 1\n")
    submit(sl, "r0@example.org", token())
    assert wait_for(lambda: peer.connections == 1, timeout=10)
    for i in range(1, 5):
        submit(sl, f"r{i}@example.org", token())
    peer.stall_at = None  # the first DATA is still waiting out its stall
    msgs = peer.wait_messages(5, timeout=20)
    assert len(msgs) == 5, sl.log_tail(20)
    assert peer.connections == 1, peer.connections
    assert queue_empty(sl)


def test_destination_rate_is_smooth(sluice_factory, peers):
    """dest_rate = 30 (messages per minute to one domain): three messages due together
    leave about two seconds apart, not in a burst."""
    peer, _ = peers()
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none",
                           extra="dest_rate = 30\nmessages_per_connection = 1\n")
    for i in range(3):
        submit(sl, f"q{i}@example.org", token())
    msgs = peer.wait_messages(3, timeout=30)
    assert len(msgs) == 3, sl.log_tail(20)
    import re
    pat = re.compile(r"^(\S+) \S+ level=info queue=\S+ deliver to=<q\d@example.org> .*"
                     r"status=sent", re.M)
    assert wait_for(lambda: len(pat.findall(sl.log_text())) == 3, timeout=10)
    stamps = pat.findall(sl.log_text())
    from datetime import datetime
    t = sorted(datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() for s in stamps)
    # GCRA: 2 s apart (the first may go at once); allow scheduling slack
    assert t[2] - t[0] >= 3.0, t


def test_idle_connection_cached_then_closed(sluice_factory, peers):
    """A delivery connection with nothing to send waits connection_cache_time for the
    destination's next message: three messages a little apart leave over one connection;
    after the cache time it QUITs, and the next message makes a new connection."""
    peer, _ = peers()
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none",
                           extra="connection_cache_time = 2s\n")
    for i in range(3):
        submit(sl, f"c{i}@example.org", token())
        assert len(peer.wait_messages(i + 1, timeout=20)) == i + 1, sl.log_tail(20)
        time.sleep(0.3)
    assert peer.connections == 1, peer.connections
    time.sleep(3)  # past the cache time: the connection QUIT
    submit(sl, "c3@example.org", token())
    assert len(peer.wait_messages(4, timeout=20)) == 4, sl.log_tail(20)
    assert peer.connections == 2, peer.connections
    assert queue_empty(sl)
    assert "status=deferred" not in sl.log_text()


def test_idle_connection_closed_by_peer(sluice_factory, peers):
    """The remote closes a connection sluice keeps idle (its own timeout, 421): the next
    message goes over a new connection, without a deferral or a failed attempt."""
    peer, _ = peers()
    peer.idle_timeout = 0.5
    peer.start()
    sl = delivering_sluice(sluice_factory, peer, tls="none",
                           extra="connection_cache_time = 30s\n")
    submit(sl, "d0@example.org", token())
    assert len(peer.wait_messages(1, timeout=20)) == 1, sl.log_tail(20)
    time.sleep(2)  # the peer times the idle connection out
    submit(sl, "d1@example.org", token())
    assert len(peer.wait_messages(2, timeout=20)) == 2, sl.log_tail(20)
    assert peer.connections == 2, peer.connections
    assert queue_empty(sl)
    assert "status=deferred" not in sl.log_text(), sl.log_tail(20)


def test_idle_connection_over_tls_reused(sluice_factory, peers, peer_cert):
    """Connection caching keeps the STARTTLS session: two messages, one TLS handshake."""
    peer, _ = peers()
    peer.start(tls_cert=peer_cert[0], tls_key=peer_cert[1])
    sl = delivering_sluice(sluice_factory, peer, tls="required",
                           extra="connection_cache_time = 5s\n")
    submit(sl, "t0@example.org", token())
    assert len(peer.wait_messages(1, timeout=20)) == 1, sl.log_tail(20)
    time.sleep(0.5)
    submit(sl, "t1@example.org", token())
    assert len(peer.wait_messages(2, timeout=20)) == 2, sl.log_tail(20)
    assert sl.log_text().count("tls relay=") == 1, sl.log_tail(20)
    assert queue_empty(sl)
