"""Delivery end to end into a real MTA we did not write: Debian's Postfix.

smtplib submits on 587 (STARTTLS + AUTH) -> sluiced -> [route pf] with opportunistic
STARTTLS -> a private Postfix instance on a free loopback port -> Postfix's virtual(8)
delivers into Maildirs under the test's folder.  The test then reads the files Postfix
wrote: the body bytes as submitted, sluice's Received (TLS, tenant) under Postfix's own
(TLS from sluice), the envelope sender in Return-Path, one copy per recipient.  A
recipient Postfix does not know is refused at RCPT (550 5.1.1) and comes back to the
sender as a DSN, read on an aiosmtpd sink that acme.example is routed to.

The Postfix instance is private (`postfix -c DIR start`): its own main.cf and master.cf,
queue_directory, data_directory and maillog under a temporary folder, no chroot,
inet_interfaces = 127.0.0.1, virtual mailboxes owned by nobody (no system users), and
default_transport = error so it never sends anything anywhere.  It is stopped with
`postfix -c DIR stop` (that instance only), then its master PID is killed if still
alive.  Needs root and Postfix (scripts/deps.sh installs it); skipped, saying why,
when either is missing or Postfix cannot start here.
"""
import email
import email.policy
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mxpeer import MXPeer
from sluicelib import free_port, header_values, message, split_message, token, wait_for
from test_delivery import queue_empty, submit

pytestmark = pytest.mark.timeout(150)

PF_DOMAIN = "pf.sluice.test"   # Postfix's virtual mailbox domain
PF_HOSTNAME = "pf.sluice.test"  # Postfix's myhostname, in its Received header
PF_USERS = ("bob", "carol")      # mailboxes; anyone else is "User unknown" (550 5.1.1)
SEARCH_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 30
STOP_TIMEOUT = 15


def _alive(pid):
    """Running and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class PostfixInstance:
    """One private Postfix under root/: etc/ (main.cf, master.cf, the TLS pair, the
    virtual mailbox map), queue/, data/, mail/ (the Maildirs) and maillog."""

    def __init__(self, root, port, postfix, postmap):
        self.root = Path(root)
        self.port = port
        self.postfix = postfix
        self.postmap = postmap
        self.etc = self.root / "etc"
        self.mail = self.root / "mail"
        self.maillog = self.root / "maillog"
        self.master_pid = None
        self.started = False
        self.env = dict(os.environ, PATH=SEARCH_PATH)

    def _run(self, *args, timeout=60):
        return subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=self.env)

    def write_config(self):
        r = self.root
        for d in ("etc", "queue", "data", "mail"):
            (r / d).mkdir()
        nobody = pwd.getpwnam("nobody")
        mail_owner = self._run(self.postconf(), "-dh", "mail_owner").stdout.decode().strip()
        shutil.chown(r / "data", user=mail_owner or "postfix")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        key, cert = self.etc / "key.pem", self.etc / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={PF_HOSTNAME}",
                        "-addext", f"subjectAltName=DNS:{PF_HOSTNAME}"],
                       check=True, capture_output=True, timeout=60)
        (self.etc / "main.cf").write_text(f"""# private Postfix of a sluice test (generated)
compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
maillog_file = {self.maillog}
maillog_file_prefixes = {r}/
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {PF_HOSTNAME}
mydomain = sluice.test
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
# sluice is a remote MTA here: no header rewriting, no added headers
local_header_rewrite_clients =
# never send anything anywhere (bounces, relaying): everything stays on loopback
default_transport = error:outbound mail disabled in this test
relay_transport = error:outbound mail disabled in this test
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
virtual_mailbox_domains = {PF_DOMAIN}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = hash:{self.etc}/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
""")
        # a trailing slash: Maildir, whose files hold the message as received (no
        # mbox "From " line, no >From quoting)
        (self.etc / "vmailbox").write_text(
            "".join(f"{u}@{PF_DOMAIN} {u}/\n" for u in PF_USERS))
        rr = self._run(self.postmap, "-c", str(self.etc), f"hash:{self.etc}/vmailbox")
        if rr.returncode != 0:
            raise AssertionError(f"postmap failed: {rr.stderr.decode(errors='replace')}")
        master = Path("/etc/postfix/master.cf")
        if not master.is_file():
            master = Path("/usr/share/postfix/master.cf.dist")
        lines, found = [], False
        for line in master.read_text().splitlines():
            f = line.split()
            if line[:1] not in ("", "#", " ", "\t") and len(f) >= 8:
                f[4] = "n"  # no chroot: the queue is not under /var/spool/postfix
                if f[0] == "smtp" and f[1] == "inet":
                    f[0] = f"127.0.0.1:{self.port}"
                    found = True
                line = " ".join(f)
            lines.append(line)
        if not found:
            raise AssertionError(f"no 'smtp inet' service in {master}")
        (self.etc / "master.cf").write_text("\n".join(lines) + "\n")

    def postconf(self):
        return shutil.which("postconf", path=SEARCH_PATH) or "postconf"

    def start(self):
        """Start it; returns None, or why it could not run here."""
        r = self._run(self.postfix, "-c", str(self.etc), "start")
        if r.returncode != 0:
            return (f"`postfix -c {self.etc} start` exited {r.returncode}: "
                    f"{(r.stdout + r.stderr).decode(errors='replace').strip()}\n"
                    f"{self.log_tail()}")
        self.started = True
        pidfile = self.root / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.master_pid is None:
                try:
                    self.master_pid = int(pidfile.read_text().strip())
                except (OSError, ValueError):
                    pass
            if self.master_pid is not None and not _alive(self.master_pid):
                return f"the Postfix master exited at start:\n{self.log_tail()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return None
            except OSError:
                time.sleep(0.1)
        return f"Postfix's smtpd did not listen on 127.0.0.1:{self.port} in " \
               f"{START_TIMEOUT}s:\n{self.log_tail()}"

    def stop(self):
        if not self.started:
            return
        self.started = False
        self._run(self.postfix, "-c", str(self.etc), "stop", timeout=STOP_TIMEOUT + 5)
        pid = self.master_pid
        if pid is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            print(f"Postfix master (pid {pid}) still running after `postfix stop`: SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_text(self):
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def delivered(self, user, tok):
        """The files in user's Maildir (new/ and cur/) that hold tok, as bytes."""
        out = []
        for sub in ("new", "cur"):
            d = self.mail / user / sub
            if d.is_dir():
                for f in sorted(d.iterdir()):
                    data = f.read_bytes()
                    if tok.encode() in data:
                        out.append(data)
        return out


@pytest.fixture(scope="module")
def postfix():
    if os.geteuid() != 0:
        pytest.skip("needs root: a private Postfix instance is started with "
                    "`postfix -c DIR start`")
    tools = {t: shutil.which(t, path=SEARCH_PATH) for t in ("postfix", "postmap", "openssl")}
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: Postfix is not installed "
                    "(scripts/deps.sh installs it)")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to own the virtual mailboxes")
    root = tempfile.mkdtemp(prefix="sluice-it-postfix-")
    os.chmod(root, 0o755)  # Postfix's daemons run as postfix and nobody
    pf = PostfixInstance(root, free_port(), tools["postfix"], tools["postmap"])
    try:
        pf.write_config()
        why = pf.start()
        if why is not None:
            pytest.skip(f"Postfix cannot run in this environment: {why}")
        yield pf
    finally:
        pf.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def relay(sluice_factory, postfix, request):
    """A sluiced that routes PF_DOMAIN to Postfix (opportunistic STARTTLS) and the
    sender's domain acme.example (the DSNs) to an aiosmtpd sink."""
    sink = MXPeer(host="127.0.0.1", port=free_port()).start()
    mark = len(postfix.log_text())
    try:
        sl = sluice_factory(
            extra_global="delivery = on\nretry_schedule = 1s\ntimeout_connect = 5s\n"
                         "timeout_greeting = 10s\ntimeout_remote_command = 10s\n"
                         "timeout_data_end = 20s\n",
            extra_sections=f"[route pf]\ndomains = {PF_DOMAIN}\n"
                           f"host = 127.0.0.1:{postfix.port}\ntls = opportunistic\n\n"
                           f"[route sink]\ndomains = acme.example\n"
                           f"host = 127.0.0.1:{sink.port}\ntls = none\n")
        sl.sink = sink
        yield sl
    finally:
        sink.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(f"\n----- Postfix maillog ({postfix.maillog}) during this test -----")
            print(postfix.log_text()[mark:][-20000:])


def awkward_body(tok):
    """Body lines that trip naive relays: leading dots (SMTP dot-stuffing at both hops),
    "From " (mbox quoting), trailing and leading white space, empty lines, a line of 990
    octets, and enough of them (about 100 KB) to take several writes."""
    lines = [f"Hello from {tok}.", ".", ". a lone dot and space", "..two dots", "From the start",
             ">From quoted already", "trailing spaces   ", "\tleading tab", "", "",
             "x" * 990, "after the long line"]
    lines += [f"{i:05d} {'abcdefghij' * 9}" for i in range(1000)]
    lines.append(f"END {tok}")
    return lines


def wait_delivered(pf, users, tok, timeout=30):
    """{user: [files]} once every user's Maildir has tok (bounded)."""
    got = wait_for(lambda: all(pf.delivered(u, tok) for u in users) and
                   {u: pf.delivered(u, tok) for u in users}, timeout=timeout)
    return got or {u: pf.delivered(u, tok) for u in users}


def test_postfix_receives_over_tls_bytes_and_headers_intact(relay, postfix):
    """Two recipients at Postfix: each Maildir gets one copy whose body is byte for byte
    the submitted one (line ends aside: Maildir stores LF), whose header block is the
    submitted one under the trace fields, with Return-Path = the envelope sender, Postfix's
    Received saying it took the mail from sluice over TLS, and sluice's Received under it
    with the submission's TLS and the tenant."""
    sl = relay
    tok = token()
    rcpts = [f"{u}@{PF_DOMAIN}" for u in PF_USERS]
    data = message(tok, rcpt=", ".join(rcpts), body_lines=awkward_body(tok))
    qid, data = submit(sl, rcpts, tok, body=data)
    got = wait_delivered(postfix, PF_USERS, tok)
    assert all(got.values()), (got, sl.log_tail(30), postfix.log_tail(30))
    assert queue_empty(sl), sl.queue_list()

    sub_head, sub_body = split_message(data)
    for user in PF_USERS:
        files = got[user]
        assert len(files) == 1, f"{user} got {len(files)} copies"
        raw = files[0]
        assert b"\r" not in raw  # Postfix stores LF; any CR would be ours
        head, body = split_message(raw)
        assert body == sub_body, "body changed on the way"

        # trace fields first (Return-Path, Delivered-To, Postfix's Received, then
        # sluice's), then the submitted header block unchanged
        assert head.endswith(b"\n" + sub_head), head.decode()
        trace = head[:len(head) - len(sub_head)]
        names = [line.split(b":", 1)[0].decode() for line in trace.split(b"\n")
                 if line and line[:1] not in (b" ", b"\t")]
        # Postfix's delivery fields, its Received, sluice's two DKIM signatures (RSA,
        # Ed25519: acme.example has keys) above sluice's Received, and what sluice adds
        # when the submission has none: nothing else
        assert names == ["Return-Path", "X-Original-To", "Delivered-To", "Received",
                         "DKIM-Signature", "DKIM-Signature", "Received", "Message-ID",
                         "Date"], head.decode()
        sigs = header_values(trace, "DKIM-Signature")
        assert b"a=rsa-sha256" in sigs[0] and b"a=ed25519-sha256" in sigs[1], sigs
        assert header_values(head, "Return-Path") == [b"<alice@acme.example>"], head.decode()
        assert header_values(head, "Delivered-To") == [f"{user}@{PF_DOMAIN}".encode()]
        received = header_values(trace, "Received")
        assert len(received) == 2, head.decode()
        pf_rcvd, sl_rcvd = received  # the newest first
        assert pf_rcvd.startswith(b"from mx.sluice.test ("), pf_rcvd
        assert b"[127.0.0.1]" in pf_rcvd
        assert b"(using TLSv1.3 " in pf_rcvd or b"(using TLS" in pf_rcvd, pf_rcvd
        assert f"by {PF_HOSTNAME} (Postfix) with ESMTPS id ".encode() in pf_rcvd, pf_rcvd
        assert b"by mx.sluice.test (sluice) with ESMTPSA id " in sl_rcvd, sl_rcvd
        assert b"(using TLSv1." in sl_rcvd, sl_rcvd
        assert b"(Authenticated sender: acme)" in sl_rcvd, sl_rcvd
        assert qid.lower().encode() in sl_rcvd.lower(), (qid, sl_rcvd)

    # sluice's side: one transaction over TLS to Postfix, both recipients sent
    log = sl.log_text()
    assert re.search(rf"deliver conn=\d+ tls relay=\S*\[127\.0\.0\.1\]:{postfix.port} "
                     r"version=TLSv1\.[23] ", log), sl.log_tail(30)
    for r in rcpts:
        assert f"queue={qid.lower()} deliver to=<{r}>" in log
    assert log.count("status=sent") == len(rcpts), sl.log_tail(30)
    # Postfix's side: TLS from sluice, delivered to both Maildirs
    pflog = postfix.log_text()
    assert "Anonymous TLS connection established from localhost[127.0.0.1]" in pflog or \
        "TLS connection established from localhost[127.0.0.1]" in pflog
    for r in rcpts:
        assert f"to=<{r}>, relay=virtual" in pflog
    assert sl.sink.messages == []  # no DSN


def test_postfix_refused_recipient_bounces_to_sender(relay, postfix):
    """One recipient Postfix does not know (550 5.1.1 at RCPT) and one it does: the known
    one gets the message once; the sender gets one RFC 3464 DSN, from <>, naming the
    refused recipient with 5.1.1, Postfix's reply text and Postfix as the Remote-MTA; the
    queue empties and nothing is retried."""
    sl = relay
    tok = token()
    bad = f"nobody@{PF_DOMAIN}"
    good = f"bob@{PF_DOMAIN}"
    qid, _ = submit(sl, [good, bad], tok)
    got = wait_delivered(postfix, ["bob"], tok)
    assert len(got["bob"]) == 1, (got, sl.log_tail(30), postfix.log_tail(30))
    dsns = sl.sink.wait_messages(1, timeout=30)
    assert len(dsns) == 1, sl.log_tail(30)
    dsn = dsns[0]
    assert dsn["mail_from"] == "" and dsn["rcpts"] == ["alice@acme.example"], dsn
    rep = email.message_from_bytes(dsn["data"], policy=email.policy.default)
    assert rep.get_content_type() == "multipart/report"
    assert rep.get_param("report-type") == "delivery-status"
    parts = list(rep.iter_parts())
    assert parts[1].get_content_type() == "message/delivery-status"
    status = parts[1].as_string()
    assert f"Final-Recipient: rfc822; {bad}" in status or \
        f"Final-Recipient: rfc822;{bad}" in status, status
    assert good not in status  # only the refused one is reported
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status
    # Postfix's own words come back to the sender
    assert "User unknown in virtual mailbox table" in status, status
    assert tok in parts[2].as_string()  # the original headers come back
    assert queue_empty(sl), sl.queue_list()

    assert f"<{bad}>: Recipient address rejected: User unknown" in postfix.log_text()
    time.sleep(2.5)  # a 1 s retry schedule: a retry would have happened by now
    assert len(postfix.delivered("bob", tok)) == 1
    assert len(sl.sink.messages) == 1
