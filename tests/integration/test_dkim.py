"""Sending domains (issue 5): DKIM signing in sluiced, `sluice domain check`, verify and
rotate-dkim, against a real DNS server (nsd, tests/dns) serving the records the CLI printed.

Signatures are checked by an independent verifier: python3-dkim (Debian), looking the keys
up in the test nsd with dnspython.  Mail goes smtplib -> sluiced (587, STARTTLS, AUTH) ->
a route to an aiosmtpd peer (mxpeer.py), so the bytes verified are the ones delivered.
The sending domain is acme.mail.sluice.test (mail.sluice.test is the zone tests write).
"""
import json
import os
import smtplib
import subprocess
import sys
import time

import pytest

from mxpeer import MXPeer
from sluicelib import ACME_PW, client_tls_context, free_port, queued_id

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dns"))
from dnsserver import TestDNS  # noqa: E402

dkim = pytest.importorskip("dkim", reason="python3-dkim (apt-get install python3-dkim)")
pytest.importorskip("nacl", reason="python3-nacl, for ed25519-sha256")
import dns.resolver  # noqa: E402

pytestmark = pytest.mark.timeout(180)

DOMAIN = "acme.mail.sluice.test"
SENDER = f"alice@{DOMAIN}"


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    d = TestDNS(tmp_path_factory.mktemp("dns"))
    d.start()
    yield d
    d.stop()


@pytest.fixture
def peer():
    p = MXPeer(host="127.0.0.1", port=free_port()).start()
    yield p
    p.stop()


def dnsfunc(nsd):
    """python3-dkim's key look-up, answered by the test nsd only."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = nsd.port
    r.lifetime = 5

    def lookup(name, timeout=5):
        try:
            a = r.resolve(name.decode().rstrip("."), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(b"".join(rr.strings) for rr in a)

    return lookup


def txt_lines(out):
    return [line for line in out.splitlines() if " IN TXT " in line]


def make_sluice(sluice_factory, nsd, peer, extra=""):
    g = (f"delivery = on\nresolver = {nsd.server}\n"
         f"resolver_option = local-zone: sluice.test. transparent\n"
         f"retry_schedule = 1s\nsending_addresses = 127.0.0.1\n"
         f"dmarc_rua = mailto:dmarc@provider.sluice.test\n" + extra)
    sl = sluice_factory(start=False, extra_global=g,
                        extra_sections=f"[route peer]\ndomains = *\nhost = 127.0.0.1:{peer.port}\n"
                                       f"tls = none\n")
    out = sl.cli("domain", "add", "acme", DOMAIN, "--verified").stdout.decode()
    recs = txt_lines(out)
    assert len(recs) == 5, out
    return sl, recs


def send(sl, msg, rcpts=("bob@example.org",), options=()):
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=60) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        c.mail(SENDER, list(options))
        for r in rcpts:
            code, reply = c.rcpt(r)
            assert code == 250, reply
        code, reply = c.data(msg)
        assert code == 250, reply
    return queued_id(reply)


def signatures(raw):
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields, cur = [], None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and cur is not None:
            cur += line
            continue
        if cur is not None:
            fields.append(cur)
        cur = line
    fields.append(cur)
    return [f for f in fields if f.lower().startswith(b"dkim-signature:")]


def tag(sig, name):
    for part in sig.split(b":", 1)[1].replace(b"\t", b"").replace(b" ", b"").split(b";"):
        k, _, v = part.partition(b"=")
        if k == name:
            return v.decode()
    return None


def verify_all(raw, lookup):
    res = []
    d = dkim.DKIM(raw)
    for i in range(len(signatures(raw))):
        try:
            res.append(bool(d.verify(idx=i, dnsfunc=lookup)))
        except dkim.ValidationError:
            res.append(False)
    return res


def add_header(raw, field):
    """A header added after signing, below the signatures and Received."""
    head, body = raw.split(b"\r\n\r\n", 1)
    return head + b"\r\n" + field + b"\r\n\r\n" + body


def hdrs(subject, extra=b""):
    return (f"From: Alice <{SENDER}>\r\nTo: Bob <bob@example.org>\r\n"
            f"Subject: {subject}\r\nDate: Mon, 30 Nov 2026 06:00:00 +0000\r\n").encode() + extra


LONG = b"x" * 990
CASES = {
    "plain": ([], hdrs("plain") + b"\r\nHello,\r\n\r\nplain text.  \r\n\r\n\r\n"),
    "8bit": (["BODY=8BITMIME"],
             hdrs("8bit", b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
                          b"Content-Transfer-Encoding: 8bit\r\n")
             + b"\r\nCaf\xe9 cr\xe8me br\xfbl\xe9e\t \r\n"),
    "smtputf8": (["SMTPUTF8", "BODY=8BITMIME"],
                 ("From: J\u00f6rg <" + SENDER + ">\r\nTo: \u7528\u6237 <bob@example.org>\r\n"
                  "Subject: Gr\u00fc\u00dfe aus K\u00f6ln \u2615\r\n"
                  "Date: Mon, 30 Nov 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                  "Gr\u00fc\u00dfe \u2014 \U0001F4E8\r\n").encode()),
    "longline": ([], hdrs("a long line, and a long folded header", b"X-Long: " + b"y" * 70 +
                          b"\r\n " + b"z" * 900 + b"\r\n") + b"\r\n" + LONG + b"\r\n" +
                 LONG[:500] + b"\r\n"),
    "multipart": ([], hdrs("multipart", b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;"
                                        b"\r\n\tboundary=\"b1\"\r\n")
                  + b"\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nplain part\r\n"
                    b"--b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                    b"PGI+aHRtbDwvYj4=\r\n--b1--\r\nepilogue\r\n"),
}


def test_signed_messages_verify(sluice_factory, nsd, peer):
    """Every message is signed for its From: domain with rsa-sha256 and ed25519-sha256,
    relaxed/relaxed, From/To/Subject/Date over-signed; python3-dkim verifies both against
    the records nsd serves, and a header added after signing breaks both."""
    sl, recs = make_sluice(sluice_factory, nsd, peer)
    nsd.set_mail_zone(recs)
    sl.start()
    lookup = dnsfunc(nsd)
    for i, (name, (opts, msg)) in enumerate(CASES.items()):
        send(sl, msg, options=opts)
        got = peer.wait_messages(i + 1, timeout=30)
        assert len(got) == i + 1, (name, sl.log_tail(20))
        raw = got[-1]["data"]
        sigs = signatures(raw)
        assert sorted(tag(s, b"a") for s in sigs) == ["ed25519-sha256", "rsa-sha256"], name
        for s in sigs:
            assert tag(s, b"d") == DOMAIN and tag(s, b"c") == "relaxed/relaxed"
            h = tag(s, b"h").split(":")
            for over in ("from", "to", "subject", "date"):
                assert h.count(over) == 2, (name, h)  # present once, signed twice
        assert verify_all(raw, lookup) == [True, True], (name, raw[:3000])
        # a trace header on top is fine; a header added after signing is not
        assert verify_all(b"Received: from x by y; now\r\n" + raw, lookup) == [True, True]
        for added in (b"Subject: replayed", b"To: more@example.net", b"From: evil@example.net",
                      b"Date: Tue, 1 Dec 2026 00:00:00 +0000"):
            assert verify_all(add_header(raw, added), lookup) == [False, False], (name, added)
    assert "dkim=signed domain=" + DOMAIN in sl.log_text()


def test_unsigned_without_keys_and_reload(sluice_factory, nsd, peer):
    """A domain without keys sends unsigned, with a log line; the daemon notices the
    store changed (no restart) and signs once keys are back."""
    sl, recs = make_sluice(sluice_factory, nsd, peer)
    nsd.set_mail_zone(recs)
    db = str(sl.root / "state" / "sluice.db")
    sl.start()
    send(sl, CASES["plain"][1])
    assert len(peer.wait_messages(1, timeout=30)) == 1
    assert len(signatures(peer.messages[0]["data"])) == 2
    subprocess.run(["sqlite3", db, f"DELETE FROM dkim_keys WHERE domain = '{DOMAIN}'"],
                   check=True, timeout=30)
    send(sl, CASES["plain"][1])
    assert len(peer.wait_messages(2, timeout=30)) == 2
    assert signatures(peer.messages[1]["data"]) == []
    assert f"dkim=none domain={DOMAIN} reason=no-keys" in sl.log_text()
    out = sl.cli("domain", "records", DOMAIN).stdout.decode()  # makes new keys
    nsd.set_mail_zone(txt_lines(out))
    send(sl, CASES["plain"][1])
    assert len(peer.wait_messages(3, timeout=30)) == 3
    raw = peer.messages[2]["data"]
    assert verify_all(raw, dnsfunc(nsd)) == [True, True]


def check_json(sl):
    r = sl.cli("domain", "check", DOMAIN, "--json", check=False)
    data = json.loads(r.stdout.decode())
    return r.returncode, {(c["check"], c["name"]): c for c in data["checks"]}, data


def statuses(checks):
    return {k: v["status"] for k, v in checks.items()}


def test_domain_check_pass_and_each_fail(sluice_factory, nsd, peer):
    sl, recs = make_sluice(sluice_factory, nsd, peer)
    verify = [r for r in recs if r.startswith("_sluice-verify.")]
    dkims = [r for r in recs if "._domainkey." in r]
    spf = [r for r in recs if r.startswith(DOMAIN + ".")]
    dmarc = [r for r in recs if r.startswith("_dmarc.")]
    assert len(verify) == 1 and len(dkims) == 2 and len(spf) == 1 and len(dmarc) == 1, recs
    assert "ip4:127.0.0.1" in spf[0] and "rua=mailto:dmarc@provider.sluice.test" in dmarc[0]

    nsd.set_mail_zone(recs)
    rc, checks, data = check_json(sl)
    assert rc == 0 and data["ok"], checks
    assert set(statuses(checks).values()) == {"pass"}, checks
    assert len([k for k in checks if k[0] == "dkim"]) == 2
    text = sl.cli("domain", "check", DOMAIN).stdout.decode()
    assert [line.split()[0] for line in text.splitlines()[1:] if not line.startswith(" ")] \
        == ["pass"] * 5, text

    # each record missing or wrong, one at a time: that check fails, with the fix
    other_key = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    cases = {
        "verification": [r for r in recs if r not in verify],
        "dkim": [r for r in recs if r != dkims[1]] + [
            dkims[1].split(" IN TXT ")[0] + f' IN TXT "{other_key}"'],
        "spf": [r for r in recs if r not in spf],
        "dmarc": [r for r in recs if r not in dmarc],
    }
    for what, zone in cases.items():
        nsd.set_mail_zone(zone)
        rc, checks, data = check_json(sl)
        failed = {k for k, v in checks.items() if v["status"] == "fail"}
        assert rc == 1 and not data["ok"], (what, checks)
        assert {k[0] for k in failed} == {what}, (what, checks)
        for k in failed:
            assert checks[k]["fix"], (what, checks[k])
    # SPF that does not authorise us, and one that breaks the look-up limit
    for bad in (f'{DOMAIN}. 1 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
                f'{DOMAIN}. 1 IN TXT "v=spf1 include:loop.{DOMAIN} -all"',
                f'{DOMAIN}. 1 IN TXT "v=spf1 ip4:127.0.0.1 -all" ',
                ):
        zone = [r for r in recs if r not in spf] + [bad, f'loop.{DOMAIN}. 1 IN TXT '
                                                    f'"v=spf1 include:loop.{DOMAIN} -all"']
        if bad.endswith(" "):  # two SPF records: a permerror
            zone.append(f'{DOMAIN}. 1 IN TXT "v=spf1 -all"')
        nsd.set_mail_zone(zone)
        rc, checks, _ = check_json(sl)
        assert checks[("spf", DOMAIN)]["status"] == "fail", (bad, checks)
    detail = checks[("spf", DOMAIN)]["detail"]
    assert "permerror" in detail, detail
    # SPF through include, a and mx, with a redirect
    zone = [r for r in recs if r not in spf] + [
        f'{DOMAIN}. 1 IN TXT "v=spf1 mx:nomx.{DOMAIN} include:inc.{DOMAIN} -all"',
        f'inc.{DOMAIN}. 1 IN TXT "v=spf1 redirect=red.{DOMAIN}"',
        f'red.{DOMAIN}. 1 IN TXT "v=spf1 a:host.{DOMAIN}/24 -all"',
        f'host.{DOMAIN}. 1 IN A 127.0.0.99',
    ]
    nsd.set_mail_zone(zone)
    rc, checks, _ = check_json(sl)
    assert rc == 0, checks
    assert "host" in checks[("spf", DOMAIN)]["detail"], checks[("spf", DOMAIN)]
    # DMARC with no valid policy
    nsd.set_mail_zone([r for r in recs if r not in dmarc] +
                      [f'_dmarc.{DOMAIN}. 1 IN TXT "v=DMARC1; p=maybe"'])
    rc, checks, _ = check_json(sl)
    assert checks[("dmarc", f"_dmarc.{DOMAIN}")]["status"] == "fail"


def test_verify_by_dns_token(sluice_factory, nsd, peer):
    """An unverified domain may not send; `domain verify` finds the token in DNS, and then
    it sends, signed for its own d=."""
    sl, recs = make_sluice(sluice_factory, nsd, peer)
    out = sl.cli("domain", "add", "acme", "new." + DOMAIN).stdout.decode()
    recs2 = txt_lines(out)
    nsd.set_mail_zone(recs)
    sl.start()
    new_from = f"bob@new.{DOMAIN}"
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=60) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        code, reply = c.mail(new_from)
        assert code == 553 and b"not verified" in reply, (code, reply)
    r = sl.cli("domain", "verify", "new." + DOMAIN, check=False)
    assert r.returncode == 1 and b"_sluice-verify.new." in r.stdout, r.stdout
    listed = json.loads(sl.cli("domain", "list", "--json").stdout)
    assert [d["verified"] for d in listed if d["domain"] == "new." + DOMAIN] == [False]
    nsd.set_mail_zone(recs + recs2)
    r = sl.cli("domain", "verify", "new." + DOMAIN)
    assert b"token found in DNS" in r.stdout
    listed = json.loads(sl.cli("domain", "list", "--json").stdout)
    assert [d["verified"] for d in listed if d["domain"] == "new." + DOMAIN] == [True]
    msg = (f"From: <{new_from}>\r\nTo: <bob@example.org>\r\nSubject: verified now\r\n"
           f"Date: Mon, 30 Nov 2026 06:00:00 +0000\r\n\r\nhello\r\n").encode()
    with smtplib.SMTP("127.0.0.1", sl.ports["submission"], timeout=60) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        c.sendmail(new_from, ["bob@example.org"], msg)
    assert len(peer.wait_messages(1, timeout=30)) == 1, sl.log_tail(20)
    raw = peer.messages[0]["data"]
    assert {tag(s, b"d") for s in signatures(raw)} == {"new." + DOMAIN}
    assert verify_all(raw, dnsfunc(nsd)) == [True, True]


def test_rotate_dkim(sluice_factory, nsd, peer):
    """New selectors are published first; signing switches once DNS shows them; the old
    keys stay published for dkim_overlap, then are wiped."""
    sl, recs = make_sluice(sluice_factory, nsd, peer, extra="dkim_overlap = 8s\n")
    nsd.set_mail_zone(recs)
    sl.start()
    lookup = dnsfunc(nsd)

    def sent_selectors(n):
        send(sl, CASES["plain"][1])
        assert len(peer.wait_messages(n, timeout=30)) == n, sl.log_tail(20)
        raw = peer.messages[n - 1]["data"]
        assert verify_all(raw, lookup) == [True, True]
        return sorted(tag(s, b"s") for s in signatures(raw))

    old = sent_selectors(1)
    out = sl.cli("domain", "rotate-dkim", DOMAIN).stdout.decode()
    new = txt_lines(out)
    assert len(new) == 2, out
    new_sel = sorted(line.split("._domainkey.")[0] for line in new)
    assert set(new_sel).isdisjoint(old)
    # not in DNS yet: no switch, signing stays
    r = sl.cli("domain", "rotate-dkim", DOMAIN, check=False)
    assert r.returncode == 1 and b"not in DNS yet" in r.stdout, r.stdout
    assert sent_selectors(2) == old
    # published: the switch
    nsd.set_mail_zone(recs + new)
    out = sl.cli("domain", "rotate-dkim", DOMAIN).stdout.decode()
    assert out.count("signing with it now") == 2 and out.count("retired") == 2, out
    # within the overlap the old records must stay: check looks at them too
    rc, checks, _ = check_json(sl)
    assert rc == 0, checks
    kept = [v["detail"] for k, v in checks.items() if k[0] == "dkim" and "retired" in v["detail"]]
    assert len(kept) == 2, checks
    assert sent_selectors(3) == new_sel
    # after the overlap the old private keys go, and the records may
    time.sleep(8.5)
    out = sl.cli("domain", "rotate-dkim", DOMAIN).stdout.decode()
    assert out.count("overlap over, key deleted") == 2, out
    listing = sl.cli("domain", "records", DOMAIN).stdout.decode()
    for s in old:
        assert f"{s}._domainkey" not in "\n".join(txt_lines(listing)), listing
    assert sent_selectors(4) == new_sel


def test_keys_readable_only_by_sluice(sluice_factory, nsd, peer):
    """Keys live in the store file: mode 0600, owned by sluiced's user once it ran."""
    sl, recs = make_sluice(sluice_factory, nsd, peer)
    sl.start()
    db = sl.root / "state" / "sluice.db"
    st = os.stat(db)
    assert st.st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        import pwd
        assert pwd.getpwuid(st.st_uid).pw_name == "nobody"
    out = subprocess.run(["sqlite3", str(db), "SELECT count(*) FROM dkim_keys WHERE "
                          "private_pem LIKE '-----BEGIN PRIVATE KEY-----%'"],
                         capture_output=True, timeout=30)
    assert int(out.stdout.decode().strip() or 0) >= 2, out
