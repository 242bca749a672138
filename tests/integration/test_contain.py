"""Containment of a compromised login (issue 4), measured end to end.

A real sluiced, a real client (smtplib over 587 with STARTTLS and AUTH).  The
login's baseline is what a fortnight of office mail leaves in the store: about
40 recipients an hour at its 40 customer domains, from a network of its own.
Writing that baseline into the store stands in for the fortnight (sluiced loads
baselines at start, as after any restart); the rest is live.

- A compromise: the password is used from a network the login never used and
  blasts recipients at domains it never wrote to.  We count the messages that
  would leave (queued and not held) before sluice holds the login's mail, then
  see it suspended, AUTH refused, and the operator's resume undo it.
- An honest newsletter: the same login, from its own network, sends five times
  its usual hour to its customers in one go.  Nothing is held or refused.

Delivery is off: every accepted message stays in the queue, where "held" is
read with `sluice queue list --json`.
"""
import json
import os
import smtplib
import sqlite3
import struct
import time

import pytest

from mxpeer import MXPeer
from sluicelib import ACME_PW, client_tls_context, free_port, token, wait_for

pytestmark = pytest.mark.timeout(180)

CUSTOMERS = [f"customer{i}.example" for i in range(40)]


def fnv1a(s):
    """policy_contain_hash(): FNV-1a 64 over the lower-cased text, never 0."""
    h = 1469598103934665603
    for c in s.lower().encode():
        h ^= c
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h or 1


def seed_baseline(sl, own_network):
    """The store after a fortnight: baselines of the login and its tenant, and the
    network the login has always used."""
    db = sqlite3.connect(str(sl.root / "state" / "sluice.db"))
    try:
        (tid,) = db.execute("SELECT id FROM tenants WHERE name = 'acme'").fetchone()
        (cid,) = db.execute("SELECT id FROM credentials WHERE username = 'acme'").fetchone()
        blob = b"".join(struct.pack("<Q", fnv1a(d)) for d in CUSTOMERS)
        for kind, sid in ((1, tid), (2, cid)):
            db.execute("INSERT INTO contain_baseline (kind, subject_id, tenant_id, "
                       "rcpts_per_hour, hours, domains, updated) VALUES (?, ?, ?, 40.0, 100, ?, 1)",
                       (kind, sid, tid, blob))
        db.execute("INSERT INTO credential_seen (credential_id, network, first_seen) "
                   "VALUES (?, ?, 1)", (cid, own_network))
        db.commit()
    finally:
        db.close()
    # back to the owner of the folder (sluiced drops to it)
    st = os.stat(sl.root / "state")
    for name in os.listdir(sl.root / "state"):
        if name.startswith("sluice.db"):
            os.chown(sl.root / "state" / name, st.st_uid, st.st_gid)


def body(tok):
    return (f"From: alice@acme.example\r\nTo: undisclosed-recipients:;\r\n"
            f"Subject: offer {tok}\r\nMessage-ID: <{tok}@acme.example>\r\n\r\n"
            f"The same text to everyone.\r\n").encode()


def send(sl, rcpts, tok, c=None):
    """One message on a logged-in smtplib session c (made when None).  Returns
    (code, text) of the final reply: MAIL's, the last RCPT's or DATA's."""
    own = c is None
    if own:
        c = login(sl)
    try:
        code, text = c.mail("alice@acme.example")
        if code != 250:
            c.rset()
            return code, text.decode()
        for r in rcpts:
            code, text = c.rcpt(r)
            if code != 250:
                c.rset()
                return code, text.decode()
        code, text = c.data(body(tok))
        return code, text.decode()
    finally:
        if own:
            c.quit()


def login(sl):
    c = smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=30)
    c.starttls(context=client_tls_context())
    c.login("acme", ACME_PW)
    return c


def queue_by_subject(sl):
    out = {}
    for m in sl.queue_list():
        out[m["id"]] = m
    return out


def test_compromised_login_contained_within_ten_messages(sluice_factory):
    """Throttled, the blaster waits as told (1 s here) and goes on; then held; then
    suspended."""
    sl = sluice_factory(start=False, extra_global="contain_throttle_interval = 1s\n")
    seed_baseline(sl, "198.51.100.0/24")  # the thief logs in from 127.0.0.1
    sl.start()
    left = held = throttled = 0
    refused = None
    c = login(sl)
    try:
        for i in range(40):
            rcpts = [f"user{k}@victim{i * 5 + k}.example" for k in range(5)]
            for _ in range(3):
                code, text = send(sl, rcpts, token(), c)
                if code != 451:
                    break
                assert "4.7.1" in text and "unusual activity" in text, text
                throttled += 1
                time.sleep(1.1)
            if code != 250:
                refused = (i, code, text)
                break
            qid = text.split()[-1]
            m = [x for x in sl.queue_list() if x["id"] == qid]
            assert m, (qid, sl.queue_list())
            if m[0]["held"]:
                held += 1
                # the spool keeps who sent it, for the operator's review
                shown = json.loads(sl.cli("queue", "show", qid, "--json").stdout)
                assert shown["login"] == "acme", shown
            else:
                left += 1
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass
    print(f"compromise: {left} messages left (queued, not held), {throttled} MAILs "
          f"throttled, {held} held, then refused: {refused}")
    assert left <= 10, sl.log_tail(30)
    assert held >= 1, sl.log_tail(30)
    assert refused is not None and refused[1] == 550 and "5.7.1" in refused[2], refused
    log = sl.log_text()
    assert 'contain user="acme" level=hold' in log
    assert 'contain user="acme" level=suspend' in log
    listed = json.loads(sl.cli("contain", "list", "--json").stdout)
    assert any(x["kind"] == "login" and x["name"] == "acme" and x["level"] == "suspend"
               for x in listed), listed
    # suspended: the password no longer works
    with pytest.raises(smtplib.SMTPAuthenticationError):
        login(sl)
    # the tenant itself is not suspended for one login
    assert not any(x["kind"] == "tenant" for x in listed), listed
    # the operator resumes the login: it may send again
    out = sl.cli("credential", "resume", "acme").stdout.decode()
    assert "login 'acme' resumed" in out
    assert json.loads(sl.cli("contain", "list", "--json").stdout) == []
    code, text = send(sl, ["friend@customer1.example"], token())
    assert code == 250, text


def test_honest_newsletter_triggers_nothing(sluice_factory):
    sl = sluice_factory(start=False)
    seed_baseline(sl, "127.0.0.0/24")  # its own network
    sl.start()
    sent = 0
    c = login(sl)
    try:
        # five times the usual hour (40 recipients): 200, one body, its customers
        for i in range(40):
            rcpts = [f"reader{i}-{k}@{CUSTOMERS[(i * 5 + k) % 40]}" for k in range(5)]
            code, text = send(sl, rcpts, token(), c)
            assert code == 250, (i, code, text, sl.log_tail(20))
            sent += len(rcpts)
    finally:
        c.quit()
    held = [m for m in sl.queue_list() if m["held"]]
    print(f"newsletter: {sent} recipients in 40 messages, {len(held)} held")
    assert held == []
    assert "contain " not in sl.log_text().replace("contain start", "")
    assert json.loads(sl.cli("contain", "list", "--json").stdout) == []


def contained(sl, kind, name):
    for x in json.loads(sl.cli("contain", "list", "--json").stdout):
        if x["kind"] == kind and x["name"] == name:
            return x
    return None


def test_bounces_feed_the_failures_signal(sluice_factory):
    """Every recipient of one message bounces at the remote MX (550 5.1.1): the
    bounces, known on the delivery thread from the login the spool recorded with the
    message, reach the model and throttle the login; its next MAIL is paced."""
    peer = MXPeer(host="127.0.0.1", port=free_port())
    rcpts = [f"gone{k}@{CUSTOMERS[k]}" for k in range(12)]
    for r in rcpts:
        peer.rcpt_reply[r] = "550 5.1.1 No such user here"
    peer.start()
    try:
        sl = sluice_factory(
            start=False,
            extra_global="delivery = on\nretry_schedule = 1s\ntimeout_connect = 5s\n"
                         "max_recipients = 50\n",
            extra_sections=f"[route peer]\ndomains = *\nhost = {peer.host}:{peer.port}\n"
                           "tls = none\n")
        seed_baseline(sl, "127.0.0.0/24")  # its own network, its customers' domains
        sl.start()
        code, text = send(sl, rcpts, token())
        assert code == 250, text
        # nothing yet: twelve recipients at familiar domains from its own network
        assert "contain user" not in sl.log_text()
        x = wait_for(lambda: contained(sl, "login", "acme"), timeout=30, interval=0.3)
        assert x is not None, sl.log_tail(30)
        print(f"bounces: login {x['level']}: {x['reason']}")
        # the bounces come in batches: the reason names the last one and the hour's
        # signals, all of them failures (12 of 12 recipients bounced)
        assert x["level"] == "throttle" and x["reason"].startswith("bounces: "), x
        assert "failures 3.00" in x["reason"] and "domains 0.00" in x["reason"], x
        assert 'contain user="acme" level=throttle reason="bounces: ' in sl.log_text()
        # the DSN to alice is sluice's own mail and delivered: it counts for nobody
        assert peer.wait_messages(1, timeout=20)
        code, text = send(sl, [f"friend@{CUSTOMERS[1]}"], token())
        assert code == 451 and "4.7.1" in text and "unusual activity" in text, (code, text)
    finally:
        peer.stop()


def test_suppressed_recipients_feed_the_failures_signal(sluice_factory):
    """RCPTs refused by the suppression list (550 5.1.1) count as failures: a login
    writing to a list of dead addresses is throttled without any delivery."""
    sl = sluice_factory(start=False, extra_global="max_recipients = 50\n")
    seed_baseline(sl, "127.0.0.0/24")
    sl.start()
    dead = [f"dead{k}@{CUSTOMERS[k]}" for k in range(12)]
    for a in dead:
        sl.cli("suppression", "add", "acme", a)
    c = login(sl)
    try:
        code, text = send(sl, [f"ok{k}@{CUSTOMERS[k]}" for k in range(10)], token(), c)
        assert code == 250, text
        assert contained(sl, "login", "acme") is None
        assert c.mail("alice@acme.example")[0] == 250
        for a in dead:
            code, text = c.rcpt(a)
            assert code == 550 and b"5.1.1" in text, (code, text)
        c.rset()
    finally:
        c.quit()
    x = contained(sl, "login", "acme")
    assert x is not None and x["level"] == "throttle", (x, sl.log_tail(20))
    assert "refused recipients" in x["reason"], x


def test_stored_throttle_lifts_with_its_hour(sluice_factory):
    """Levels kept in the store come back at start.  A throttle is its hour's: one
    stored two hours ago is lifted at the first usage flush - gone from the store
    and `contain list`, an event and a log line say so, and the login's MAIL is not
    paced - while a throttle of this hour stays."""
    sl = sluice_factory(start=False, extra_global="usage_flush_interval = 1s\n")
    db = sqlite3.connect(str(sl.root / "state" / "sluice.db"))
    now = int(time.time())
    try:
        (tid,) = db.execute("SELECT id FROM tenants WHERE name = 'acme'").fetchone()
        (cid,) = db.execute("SELECT id FROM credentials WHERE username = 'acme'").fetchone()
        row = ("INSERT INTO contain_state (kind, subject_id, tenant_id, level, reason, by, since)"
               " VALUES (?, ?, ?, 1, 'seeded', 'sluiced', ?)")
        db.execute(row, (2, cid, tid, now - 7200))
        db.execute(row, (1, tid, tid, now))
        db.commit()
    finally:
        db.close()
    st = os.stat(sl.root / "state")
    for name in os.listdir(sl.root / "state"):
        if name.startswith("sluice.db"):
            os.chown(sl.root / "state" / name, st.st_uid, st.st_gid)
    sl.start()
    assert wait_for(lambda: contained(sl, "login", "acme") is None, timeout=10, interval=0.3), \
        sl.log_tail(20)
    assert 'contain lifted user="acme" level=none reason="throttle lifted with the hour"' in \
        sl.log_text()
    t = contained(sl, "tenant", "acme")
    assert t is not None and t["level"] == "throttle", t
    db = sqlite3.connect(str(sl.root / "state" / "sluice.db"))
    try:
        ev = db.execute("SELECT level, by, reason FROM contain_events WHERE kind = 2"
                        " AND subject_id = ?", (cid,)).fetchall()
    finally:
        db.close()
    assert ev == [(0, "sluiced", "throttle lifted with the hour")], ev
    code, text = send(sl, [f"friend@{CUSTOMERS[1]}"], token())
    assert code == 250, text
