"""Outbound policy (issue 4): limits and quotas per tenant and per login, the
suppression list, bound credential networks, and usage per hour.

Real clients (the raw SMTP client of sluicelib, smtplib, swaks) against a
sluiced of each test's own, limits set with the CLI as an operator would.
Delivery tests route every domain to an aiosmtpd peer on loopback
(mxpeer.MXPeer, as in test_delivery.py).  Usage is flushed every second
(usage_flush_interval = 1s), so every wait for it is a few seconds at most.
"""
import json
import re
import shutil
import smtplib
import subprocess
import time

import pytest

from mxpeer import MXPeer
from sluicelib import (ACME_PW, OTHER_PW, client_tls_context, free_port, message, session,
                       token, wait_for)

pytestmark = pytest.mark.timeout(120)

FLUSH = "usage_flush_interval = 1s\n"


@pytest.fixture
def sluice_factory(sluice_factory):
    """conftest's, plus: every daemon stops cleanly (exit 0, no sanitizer report), so an
    ASan/UBSan build fails these tests on a memory error in the policy code."""
    made = []

    def make(**kw):
        d = sluice_factory(**kw)
        made.append(d)
        return d

    yield make
    for d in made:
        rc = d.stop()
        log = d.log_text()
        assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, d.log_tail(60)


def policy_sluice(sluice_factory, extra=""):
    return sluice_factory(extra_global=FLUSH + extra)


def send_one(c, rcpts, sender="alice@acme.example"):
    """One whole transaction on a ready Raw session: (MAIL reply, [RCPT replies], DATA
    reply or None)."""
    mail = c.cmd(f"MAIL FROM:<{sender}>")
    if mail.code != 250:
        return mail, [], None
    rr = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts]
    if not any(r.code == 250 for r in rr):
        c.cmd("RSET")
        return mail, rr, None
    r = c.cmd("DATA")
    assert r.code == 354, c.transcript_text()
    ok = [x for x, rep in zip(rcpts, rr) if rep.code == 250]
    c.send(message(token(), sender=sender, rcpt=", ".join(ok)) + b".\r\n")
    return mail, rr, c.read_reply()


def usage(sl, *args):
    return json.loads(sl.cli("tenant", "usage", "acme", "--json", *args).stdout.decode())


def usage_is(sl, **want):
    """Wait until the usage totals (and refused_by_reason) read as wanted."""
    def check():
        u = usage(sl)
        t = dict(u["total"])
        t.update({"refused:" + k: v for k, v in u["refused_by_reason"].items()})
        return all(t.get(k.replace("__", ":"), 0) == v for k, v in want.items()) and u
    got = wait_for(check, timeout=10, interval=0.3)
    assert got, (usage(sl), want)
    return got


def test_message_rate_at_mail_names_limit_and_retry(sluice_factory):
    """messages_per_minute = 2: two messages go, the third MAIL gets 451 4.7.1 naming
    the limit, the tenant and when to retry (one interval, 30 s); the refusal is
    counted as refused, not as sent."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "messages_per_minute=2")
    with session(sl, "submission") as c:
        for _ in range(2):
            mail, rr, data = send_one(c, ["bob@example.org"])
            assert data.code == 250, c.transcript_text()
        r = c.cmd("MAIL FROM:<alice@acme.example>")
    assert r.code == 451 and r.enhanced == "4.7.1", r
    assert "messages_per_minute" in r.text and "tenant acme" in r.text, r.text
    m = re.search(r"retry in (\d+)s \(after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", r.text)
    assert m and 1 <= int(m.group(1)) <= 30, r.text
    assert "mail refused" in sl.log_text()
    usage_is(sl, accepted_messages=2, accepted_recipients=2,
             refused__messages_per_minute=1)


def test_rate_state_survives_restart_and_kill(sluice_factory):
    """messages_per_hour = 2, both used: neither a clean restart nor a kill -9 after
    the next usage flush hands the tenant a fresh burst; the MAIL after each start
    still gets 451 4.7.1 naming the limit, with a wait of about half an hour."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "messages_per_hour=2")
    with session(sl, "submission") as c:
        for _ in range(2):
            mail, rr, data = send_one(c, ["bob@example.org"])
            assert data.code == 250, c.transcript_text()
    for how in ("stop", "kill9"):
        if how == "stop":
            assert sl.stop() == 0
        else:
            time.sleep(1.5)  # a usage flush (1 s) saves the rates' state
            sl.kill9()
        sl.start()
        assert "limits state loaded rates=" in sl.log_text()
        with session(sl, "submission") as c:
            r = c.cmd("MAIL FROM:<alice@acme.example>")
        assert r.code == 451 and r.enhanced == "4.7.1", (how, r)
        assert "messages_per_hour" in r.text, r.text
        m = re.search(r"retry in (\d+)s", r.text)
        assert m and 1500 <= int(m.group(1)) <= 1800, (how, r.text)
    # the operator lifts the limit: the stored state no longer matters
    sl.cli("limit", "set", "acme", "messages_per_hour=0")
    with session(sl, "submission") as c:
        mail, rr, data = send_one(c, ["bob@example.org"])
        assert data.code == 250, c.transcript_text()


def test_recipient_rate_counts_each_recipient(sluice_factory):
    """recipients_per_hour = 3 counts recipients, not messages: 2 + 1 go, the fourth
    RCPT gets 451 4.7.1 naming recipients_per_hour; the message still goes with the
    recipients that were accepted."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "recipients_per_hour=3")
    with session(sl, "submission") as c:
        _, rr, data = send_one(c, ["a@example.org", "b@example.org"])
        assert [r.code for r in rr] == [250, 250] and data.code == 250
        _, rr, data = send_one(c, ["c@example.org", "d@example.org"])
    assert rr[0].code == 250, rr
    assert rr[1].code == 451 and rr[1].enhanced == "4.7.1", rr[1]
    assert "recipients_per_hour" in rr[1].text and "retry in" in rr[1].text
    assert data.code == 250
    usage_is(sl, accepted_messages=2, accepted_recipients=3, refused__recipients_per_hour=1)


def test_recipients_per_message_and_daily_quota(sluice_factory):
    """recipients_per_message = 2: the third RCPT of a message is 452 4.5.3.  quota_day
    = 3: recipients past it are 452 4.5.3 naming the quota and when it renews.
    Recipients of transactions that were refused (at DATA) or reset are not counted."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "recipients_per_message=2", "quota_day=3")
    with session(sl, "submission") as c:
        _, rr, data = send_one(c, ["a@example.org", "b@example.org", "c@example.org"])
        assert [r.code for r in rr] == [250, 250, 452], c.transcript_text()
        assert rr[2].enhanced == "4.5.3" and "2 per message" in rr[2].text
        assert data.code == 250
        # reserved, then abandoned: RSET
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<x@example.org>").code == 250
        assert c.cmd("RSET").code == 250
        # reserved, then refused at end of DATA (a From: that is not the tenant's)
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<y@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message(token(), sender="eve@other.example") + b".\r\n")
        assert c.read_reply().code == 550
        # so the day has room for exactly one more
        _, rr, data = send_one(c, ["d@example.org", "e@example.org"])
    assert rr[0].code == 250 and data.code == 250
    assert rr[1].code == 452 and rr[1].enhanced == "4.5.3", rr[1]
    assert "Daily quota" in rr[1].text and "renews at" in rr[1].text, rr[1].text
    u = usage_is(sl, accepted_messages=2, accepted_recipients=3, refused__quota_day=1,
                 refused__recipients_per_message=1)
    # the DATA refusal is counted under the header check's own reason
    assert u["refused_by_reason"].get("from-header") == 1, u["refused_by_reason"]
    shown = sl.cli("limit", "show", "acme").stdout.decode()
    assert "recipients today: 3" in shown, shown
    assert u["total"]["accepted_recipients"] == 3


def test_monthly_quota_is_permanent(sluice_factory):
    """quota_month = 1: the second recipient of the month gets 550 5.7.1 with the date
    it renews; swaks sees the refusal too."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "quota_month=1")
    with session(sl, "submission") as c:
        _, rr, data = send_one(c, ["a@example.org"])
        assert data.code == 250
        _, rr, _ = send_one(c, ["b@example.org"])
    assert rr[0].code == 550 and rr[0].enhanced == "5.7.1", rr[0]
    assert "Monthly quota" in rr[0].text and "renews at" in rr[0].text
    if shutil.which("swaks"):
        p = subprocess.run(["swaks", "--server", f"127.0.0.1:{sl.ports['submission']}", "--tls",
                            "--auth-user", "acme", "--auth-password", ACME_PW, "--from",
                            "alice@acme.example", "--to", "c@example.org", "--timeout", "20"],
                           capture_output=True, text=True, timeout=60)
        assert re.search(r"<~?\* 550 5\.7\.1 Monthly quota reached", p.stdout), p.stdout[-2000:]


def test_size_limit_at_mail_and_data(sluice_factory):
    """message_size = 2k: MAIL with SIZE=5000 is 552 5.3.4; a bigger message sent
    without SIZE is 552 5.3.4 at the end of DATA; smtplib sees the same."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "message_size=2k")
    with session(sl, "submission") as c:
        r = c.cmd("MAIL FROM:<alice@acme.example> SIZE=5000")
        assert r.code == 552 and r.enhanced == "5.3.4", r
        assert "2048 octets" in r.text
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message(token(), body_lines=["x" * 70] * 60) + b".\r\n")
        r = c.read_reply()
    assert r.code == 552 and r.enhanced == "5.3.4", r
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=30) as s:
        s.starttls(context=client_tls_context())
        s.login("acme", ACME_PW)
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("alice@acme.example", ["bob@example.org"],
                       message(token(), body_lines=["y" * 70] * 60))
        assert e.value.smtp_code == 552
    # MAIL SIZE=, end of DATA, smtplib's MAIL SIZE=
    usage_is(sl, accepted_messages=0, refused__message_size=3)


def test_login_limit_apart_from_tenant(sluice_factory):
    """A login's own limit (limit set --login) names the login; the tenant's own limits
    are untouched by it and another tenant is not limited at all."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "--login", "acme", "messages_per_hour=1")
    with session(sl, "submission") as c:
        assert send_one(c, ["a@example.org"])[2].code == 250
        r = c.cmd("MAIL FROM:<alice@acme.example>")
    assert r.code == 451 and "login acme" in r.text and "messages_per_hour" in r.text, r
    with session(sl, "submission", user="other", password=OTHER_PW) as c:
        for _ in range(3):
            assert send_one(c, ["a@example.org"], sender="o@other.example")[2].code == 250


def test_limits_change_while_running(sluice_factory):
    """An override set while sluiced runs applies at the next MAIL (a rate newly set
    starts with a full bucket: messages_per_day = 1 lets one more go); "default"
    removes it again."""
    sl = policy_sluice(sluice_factory)
    with session(sl, "submission") as c:
        assert send_one(c, ["a@example.org"])[2].code == 250
        sl.cli("limit", "set", "acme", "messages_per_day=1")
        assert send_one(c, ["b@example.org"])[2].code == 250
        r = c.cmd("MAIL FROM:<alice@acme.example>")
        assert r.code == 451 and "messages_per_day" in r.text, r
        sl.cli("limit", "set", "acme", "messages_per_day=default")
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250


def test_suppression_list_refuses_rcpt(sluice_factory):
    """An address on acme's suppression list gets 550 5.1.1 naming the list, in any
    case; another tenant may still send to it; removed, it is accepted again."""
    sl = policy_sluice(sluice_factory)
    sl.cli("suppression", "add", "acme", "Bob@Example.org", "--reason", "asked to stop")
    with session(sl, "submission") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        r = c.cmd("RCPT TO:<BOB@example.ORG>")
        assert r.code == 550 and r.enhanced == "5.1.1", r
        assert "tenant acme's suppression list" in r.text, r.text
        assert c.cmd("RCPT TO:<carol@example.org>").code == 250
    with session(sl, "submission", user="other", password=OTHER_PW) as c:
        assert c.cmd("MAIL FROM:<o@other.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    sl.cli("suppression", "remove", "acme", "bob@example.org")
    with session(sl, "submission") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    usage_is(sl, refused__suppressed=1)


def test_credential_network_refuse(sluice_factory):
    """A login bound to networks that do not hold the client: AUTH with the right
    password gets the very reply a wrong password gets (535 5.7.8), logged with the
    reason; bound to the client's network, AUTH works."""
    sl = policy_sluice(sluice_factory)
    sl.cli("credential", "bind", "acme", "10.99.0.0/16")
    with session(sl, "submission", auth=False) as c:
        right = c.auth_plain("acme", ACME_PW)
    with session(sl, "submission", auth=False) as c:
        wrong = c.auth_plain("acme", "not-the-password")
    assert right.code == 535 and right.enhanced == "5.7.8", right
    assert (right.code, right.text) == (wrong.code, wrong.text)
    assert "reason=outside-bound-networks" in sl.log_text()
    sl.cli("credential", "bind", "acme", "127.0.0.0/8")
    with session(sl, "submission") as c:  # asserts 235
        assert send_one(c, ["a@example.org"])[2].code == 250


def test_credential_network_flag_and_new_network(sluice_factory):
    """credential_network_mode = flag: AUTH from outside the bound networks works and is
    logged; AUTH from a /24 the login never used before is an anomaly line, and
    credential show lists the networks seen."""
    sl = policy_sluice(sluice_factory, "credential_network_mode = flag\n")
    sl.cli("credential", "bind", "acme", "10.99.0.0/16")
    with session(sl, "submission", source="127.0.0.1"):
        pass
    log = sl.log_text()
    assert "auth flagged" in log and "reason=outside-bound-networks" in log
    assert "auth new-network" not in log  # the first network is the baseline
    with session(sl, "submission", source="127.0.1.7"):
        pass
    assert re.search(r"auth new-network client=127\.0\.1\.7 user=\"acme\" "
                     r"network=127\.0\.1\.0/24", sl.log_text()), sl.log_tail(20)
    seen = json.loads(sl.cli("credential", "show", "acme", "--json").stdout.decode())["seen"]
    assert [s["network"] for s in seen] == ["127.0.0.0/24", "127.0.1.0/24"]


@pytest.fixture
def peer():
    p = MXPeer(host="127.0.0.1", port=free_port())
    yield p
    p.stop()


def test_hard_bounce_suppresses_and_usage_matches(sluice_factory, peer):
    """Delivery to an aiosmtpd peer: a 550 5.1.1 for one recipient puts it on acme's
    suppression list (source bounce), so the next RCPT to it is 550 5.1.1 at once;
    tenant usage counts what was accepted, delivered, bounced and refused."""
    peer.rcpt_reply["gone@example.org"] = "550 5.1.1 No such user here"
    peer.start()
    sl = sluice_factory(
        extra_global=FLUSH + "delivery = on\nretry_schedule = 1s\n"
                     "timeout_connect = 5s\ntimeout_greeting = 10s\n",
        extra_sections=f"[route peer]\ndomains = *\nhost = {peer.host}:{peer.port}\n"
                       "tls = none\n")
    with session(sl, "submission") as c:
        _, rr, data = send_one(c, ["ok@example.org", "gone@example.org"])
        assert data.code == 250, c.transcript_text()
        _, rr, data = send_one(c, ["ok2@example.org"])
        assert data.code == 250
    assert peer.wait_messages(2, timeout=30), sl.log_tail(30)

    def suppressed():
        rows = json.loads(sl.cli("suppression", "list", "acme", "--json").stdout.decode())
        return [r for r in rows if r["address"] == "gone@example.org"]
    rows = wait_for(suppressed, timeout=15, interval=0.3)
    assert rows and rows[0]["source"] == "bounce", sl.log_tail(30)
    assert "5.1.1" in rows[0]["reason"]
    assert "suppression added" in sl.log_text()
    with session(sl, "submission") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        r = c.cmd("RCPT TO:<gone@example.org>")
        assert r.code == 550 and r.enhanced == "5.1.1" and "suppression list" in r.text, r
    # the DSN to alice is sluice's own mail: not in acme's delivered figures
    u = usage_is(sl, accepted_messages=2, accepted_recipients=3, delivered=2, bounced=1,
                 refused__suppressed=1)
    text = sl.cli("tenant", "usage", "acme").stdout.decode()
    assert re.search(r"^total\s+2\s+3\s+1\s+2\s+0\s+1$", text, re.M), text
    assert "refused by reason: suppressed=1" in text
    assert len(u["hours"]) >= 1


def test_deferred_attempts_counted(sluice_factory, peer):
    """A 4xx from the peer counts as deferred (each attempt) for the tenant; nothing is
    suppressed for it."""
    peer.rcpt_reply["later@example.org"] = "451 4.3.0 Try again later"
    peer.start()
    sl = sluice_factory(
        extra_global=FLUSH + "delivery = on\nretry_schedule = 1s\n"
                     "timeout_connect = 5s\ntimeout_greeting = 10s\n",
        extra_sections=f"[route peer]\ndomains = *\nhost = {peer.host}:{peer.port}\n"
                       "tls = none\n")
    with session(sl, "submission") as c:
        assert send_one(c, ["later@example.org"])[2].code == 250

    def deferred():
        return usage(sl)["total"]["deferred"] >= 2
    assert wait_for(deferred, timeout=20, interval=0.5), (usage(sl), sl.log_tail(20))
    u = usage(sl)
    assert u["total"]["accepted_messages"] == 1 and u["total"]["bounced"] == 0
    assert json.loads(sl.cli("suppression", "list", "acme", "--json").stdout.decode()) == []


def test_trusted_network_counts_for_the_tenant(sluice_factory):
    """Mail from a trusted network (relay listener, no AUTH) is the tenant's: the
    tenant's limits hold and its usage counts it (as credential 0)."""
    sl = policy_sluice(sluice_factory)
    sl.cli("limit", "set", "acme", "messages_per_minute=1")
    with session(sl, "relay") as c:
        assert send_one(c, ["a@example.org"])[2].code == 250
        r = c.cmd("MAIL FROM:<alice@acme.example>")
    assert r.code == 451 and "tenant acme" in r.text and "messages_per_minute" in r.text, r
    usage_is(sl, accepted_messages=1, refused__messages_per_minute=1)
