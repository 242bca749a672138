"""SMTP protocol edge cases over raw sockets: smuggling, pipelining, limits, STARTTLS."""
import smtplib
import socket
import time

import pytest

import sluicelib
from sluicelib import (ACME_PW, TRUSTED_SRC, Closed, Raw, client_tls_context, message,
                       queued_id, session, token)

SMUGGLE_SEPARATORS = {
    "lf-dot-crlf": b"\n.\r\n",
    "lf-dot-lf": b"\n.\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-cr": b"\r.\r",
    "nul-dot-crlf": b"\r\n\x00.\r\n",
    "crlf-nul-dot": b"\r\n.\x00\r\n",
}


def _smuggle_payload(tok, sep):
    outer = message(tok, subject=f"outer {tok}")
    inner = (b"MAIL FROM:<evil-" + tok.encode() + b"@acme.example>\r\n"
             b"RCPT TO:<victim-" + tok.encode() + b"@example.org>\r\n"
             b"DATA\r\n"
             b"From: evil@acme.example\r\nSubject: smuggled " + tok.encode() + b"\r\n\r\n"
             b"SMUGGLED " + tok.encode() + b"\r\n")
    return outer.rstrip(b"\r\n") + sep + inner + b".\r\n"


@pytest.mark.parametrize("kind", ["relay", "submission"])
@pytest.mark.parametrize("name", list(SMUGGLE_SEPARATORS))
def test_smuggling(sluice, kind, name):
    sep = SMUGGLE_SEPARATORS[name]
    tok = token()
    with session(sluice, kind) as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250, c.transcript_text()
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250, c.transcript_text()
        assert c.cmd("DATA").code == 354, c.transcript_text()
        c.send(_smuggle_payload(tok, sep))
        r = c.read_reply()
        assert r.startswith(550, "5.6.0"), c.transcript_text()
        # no further replies: the embedded commands were data, not commands
        extra = c.pending(0.5)
        assert extra == b"", c.transcript_text()
        # the session goes on normally
        r = c.cmd("RSET")
        assert r.code == 250, c.transcript_text()
        r = c.cmd("QUIT")
        assert r.code == 221, c.transcript_text()
    queued = sluice.find_token(tok)
    assert queued == [], f"queued {queued} for a smuggling attempt ({name}):\n" + \
        "\n".join(sluice.queue_raw(q).decode(errors="replace") for q in queued)
    assert not any(m.get("sender", "").startswith("evil-" + tok) for m in sluice.queue_list())


@pytest.mark.parametrize("name", list(SMUGGLE_SEPARATORS))
def test_smuggling_in_one_packet_with_pipelining(sluice, name):
    """The whole transaction plus the smuggled one in a single write after 354."""
    sep = SMUGGLE_SEPARATORS[name]
    tok = token()
    with session(sluice, "relay") as c:
        c.send(b"MAIL FROM:<alice@acme.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        rs = c.read_replies(3)
        assert [r.code for r in rs] == [250, 250, 354], c.transcript_text()
        c.send(_smuggle_payload(tok, sep) + b"QUIT\r\n")
        r = c.read_reply()
        assert r.startswith(550, "5.6.0"), c.transcript_text()
        r = c.read_reply()
        assert r.code == 221, c.transcript_text()
    assert sluice.find_token(tok) == []


def test_clean_message_after_refused_one(sluice):
    """A refused bare-LF message does not poison the session: the next one is accepted."""
    tok1, tok2 = token(), token()
    with session(sluice, "relay") as c:
        for t, body, want in ((tok1, message(tok1).replace(b"Bye.\r\n", b"Bye.\n"), 550),
                              (tok2, message(tok2), 250)):
            assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
            assert c.cmd("RCPT TO:<bob@example.org>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(body + b".\r\n")
            r = c.read_reply()
            assert r.code == want, c.transcript_text()
    assert sluice.find_token(tok1) == []
    assert len(sluice.find_token(tok2)) == 1


def test_data_before_354(sluice):
    tok = token()
    with session(sluice, "relay") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        c.send(b"DATA\r\n" + message(tok) + b".\r\n")
        replies = []
        try:
            for _ in range(3):
                replies.append(c.read_reply(timeout=5))
                if replies[-1].code == 554:
                    break
        except (Closed, socket.timeout):
            pass
        codes = [(r.code, r.enhanced) for r in replies]
        assert (554, "5.5.0") in codes, c.transcript_text()
        assert 250 not in [r.code for r in replies], c.transcript_text()
        assert c.wait_closed(5), "not closed after 554 5.5.0:\n" + c.transcript_text()
    assert sluice.find_token(tok) == []


GREET_PAUSE = 0.4  # seconds; the listeners' greet_pause in the pregreet daemon


@pytest.fixture(scope="module")
def pausing(binaries):
    """A daemon whose plaintext listeners hold the banner back for GREET_PAUSE."""
    d = sluicelib.Sluice.create(binaries, label="greet-pause",
                                listener_extra=f"greet_pause = {int(GREET_PAUSE * 1000)}ms")
    d.start()
    yield d
    d.stop()


def _connect(port, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def _read_line(s):
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("kind", ["submission", "relay"])
def test_pregreet(pausing, kind):
    """Input inside the greeting pause: 554 5.5.0, no banner, connection closed,
    and the sender's command never answered.  Every time, not by luck."""
    source = TRUSTED_SRC if kind == "relay" else None
    mark = pausing.log_size()
    for _ in range(3):
        s = _connect(pausing.ports[kind], source)
        try:
            s.sendall(b"EHLO pregreet.sluice.test\r\n")
            data = _read_line(s)
            assert data.startswith(b"554 5.5.0 "), data
            try:
                rest = s.recv(4096)
            except ConnectionError:  # RST: closed with our unread input in its buffer
                rest = b""
            assert rest == b"", f"not closed after the pregreet refusal: {data!r} {rest!r}"
        finally:
            s.close()
    assert pausing.log_since(mark).count("reason=pregreet") == 3


@pytest.mark.parametrize("kind", ["submission", "relay"])
def test_greet_pause_polite_client(pausing, kind):
    """A client that waits gets the banner after the pause, then a normal session."""
    source = TRUSTED_SRC if kind == "relay" else None
    t0 = time.monotonic()
    s = _connect(pausing.ports[kind], source)
    try:
        banner = _read_line(s)
        waited = time.monotonic() - t0
        assert banner.startswith(b"220 "), banner
        assert waited >= GREET_PAUSE * 0.9, f"banner after {waited:.3f}s"
        s.sendall(b"EHLO polite.sluice.test\r\n")
        reply = b""
        while b"\r\n250 " not in b"\r\n" + reply:
            chunk = s.recv(4096)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"250"), reply
        s.sendall(b"QUIT\r\n")
        assert _read_line(s).startswith(b"221 "), "no 221 to QUIT"
    finally:
        s.close()


def test_greet_pause_smtplib(pausing):
    """A real client through the pause: smtplib submits with STARTTLS and AUTH."""
    tok = token()
    with smtplib.SMTP("127.0.0.1", pausing.ports["submission"], timeout=10) as c:
        c.starttls(context=client_tls_context())
        c.login("acme", ACME_PW)
        c.sendmail("alice@acme.example", ["bob@example.org"], message(tok))
    assert len(pausing.find_token(tok)) == 1


@pytest.mark.parametrize("kind", ["submission", "relay"])
def test_starttls_piggyback_discarded(sluice, kind):
    port = sluice.ports[kind]
    source = TRUSTED_SRC if kind == "relay" else None
    with Raw(port, source=source, read_greeting=True) as c:
        assert c.greeting.code == 220
        assert c.ehlo().code == 250
        c.send(b"STARTTLS\r\nEHLO evil.sluice.test\r\nMAIL FROM:<alice@acme.example>\r\n"
               b"RCPT TO:<bob@example.org>\r\n")
        r = c.read_reply()
        assert r.code == 220, c.transcript_text()
        assert c.pending(0.5) == b"", "replies to piggybacked commands before TLS:\n" + \
            c.transcript_text()
        c.starttls_handshake_only()
        # fresh session after TLS: the piggybacked MAIL does not count
        r = c.cmd("RCPT TO:<bob@example.org>")
        assert r.code == 503, c.transcript_text()
        r = c.cmd("MAIL FROM:<alice@acme.example>")
        want = (503,) if kind == "relay" else (503, 530)
        assert r.code in want, "MAIL before EHLO after STARTTLS:\n" + c.transcript_text()
        r = c.ehlo()
        assert r.code == 250 and b"STARTTLS" not in r.raw, c.transcript_text()
        if kind == "submission":
            assert b"AUTH PLAIN LOGIN" in r.raw, c.transcript_text()


def test_starttls_twice_refused(sluice):
    with session(sluice, "submission", auth=False) as c:
        r = c.cmd("STARTTLS")
        assert r.code in (503, 454, 502), c.transcript_text()


def test_oversize_command_line(sluice):
    with session(sluice, "relay") as c:
        r = c.cmd(b"NOOP " + b"x" * 1000)
        assert r.startswith(500, "5.5.2"), c.transcript_text()
        r = c.cmd("NOOP")
        assert r.code == 250, "the rest of the long line was taken as a command:\n" + \
            c.transcript_text()
        # a long line whose tail looks like a command must not run that command
        # (MAIL and RCPT may be longer than 512 for their parameters, so > 1100 here)
        r = c.cmd(b"MAIL FROM:<alice@acme.example> " + b"X" * 1100 + b"RSET")
        assert r.code == 500, c.transcript_text()
        r = c.cmd("RCPT TO:<bob@example.org>")
        assert r.code == 503, c.transcript_text()


def test_command_line_at_limit_accepted(sluice):
    """512 octets including CRLF is legal (RFC 5321 4.5.3.1.4)."""
    with session(sluice, "relay") as c:
        line = b"NOOP " + b"y" * (512 - 5 - 2)
        assert len(line) + 2 == 512
        assert c.cmd(line).code == 250, c.transcript_text()


def test_size_parameter(sluice):
    with session(sluice, "relay") as c:
        r = c.cmd("MAIL FROM:<alice@acme.example> SIZE=2000000")
        assert r.startswith(552, "5.3.4"), c.transcript_text()
        r = c.cmd("MAIL FROM:<alice@acme.example> SIZE=1048576")
        assert r.code == 250, c.transcript_text()
        assert c.cmd("RSET").code == 250
        r = c.cmd("MAIL FROM:<alice@acme.example> SIZE=99999999999999999999999")
        assert r.code in (552, 501), c.transcript_text()


def test_oversize_data(sluice):
    tok = token()
    line = b"z" * 998 + b"\r\n"
    body = message(tok) + line * 1200  # ~1.2 MB > 1m
    with session(sluice, "relay") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(body + b".\r\n")
        r = c.read_reply(timeout=20)
        assert r.startswith(552, "5.3.4"), c.transcript_text()
        assert c.cmd("NOOP").code == 250, c.transcript_text()
    assert sluice.find_token(tok) == []


def test_too_many_recipients(sluice):
    tok = token()
    with session(sluice, "relay") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        for i in range(5):
            assert c.cmd(f"RCPT TO:<r{i}@example.org>").code == 250, c.transcript_text()
        r = c.cmd("RCPT TO:<r5@example.org>")
        assert r.startswith(452, "4.5.3"), c.transcript_text()
        assert c.cmd("DATA").code == 354
        c.send(message(tok) + b".\r\n")
        r = c.read_reply()
        assert r.code == 250, c.transcript_text()
        qid = queued_id(r.raw)
    show = sluice.queue_show(qid)
    addrs = [x["address"] if isinstance(x, dict) else x for x in show["recipients"]]
    assert sorted(addrs) == [f"r{i}@example.org" for i in range(5)], show


def test_pipelining_replies_in_order(sluice):
    tok = token()
    with session(sluice, "submission") as c:
        c.send(b"MAIL FROM:<alice@acme.example>\r\n"
               b"RCPT TO:<a@example.org>\r\n"
               b"RCPT TO:<bad address>\r\n"
               b"RCPT TO:<b@example.org>\r\n"
               b"DATA\r\n")
        rs = c.read_replies(5)
        assert [r.code for r in rs] == [250, 250, 501, 250, 354], c.transcript_text()
        c.send(message(tok) + b".\r\nMAIL FROM:<alice@acme.example>\r\nRCPT TO:<c@example.org>\r\n"
               b"DATA\r\n")
        rs = c.read_replies(4)
        assert [r.code for r in rs] == [250, 250, 250, 354], c.transcript_text()
        c.send(message(tok + "b") + b".\r\nQUIT\r\n")
        rs = c.read_replies(2)
        assert [r.code for r in rs] == [250, 221], c.transcript_text()
    assert len(sluice.find_token(tok + "b")) == 1
    assert len(sluice.find_token(tok)) == 2


def test_pipelining_rcpt_without_mail_rejected(sluice):
    """MAIL refused in a pipelined group: its RCPTs and DATA fail too, no 354."""
    with session(sluice, "submission") as c:
        c.send(b"MAIL FROM:<x@other.example>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n")
        rs = c.read_replies(3)
        assert rs[0].startswith(553, "5.7.1"), c.transcript_text()
        assert rs[1].code == 503 and rs[2].code in (503, 554), c.transcript_text()
        assert c.pending(0.3) == b"", c.transcript_text()


def test_too_many_errors(sluice):
    """max_errors = 5: at the latest the 6th error is followed by 421 and a close."""
    with session(sluice, "relay") as c:
        errors = 0
        got_421 = False
        for i in range(8):
            try:
                r = c.cmd(f"XYZZY{i}")
            except Closed:
                break
            if r.code == 421:
                got_421 = True
                break
            assert r.code in (500, 502), c.transcript_text()
            errors += 1
            if c.buf or c.pending(0.2):  # a 421 right after the error reply
                r = c.read_reply()
                assert r.startswith(421), c.transcript_text()
                got_421 = True
                break
        assert got_421, "no 421 after repeated errors:\n" + c.transcript_text()
        assert errors in (5, 6), c.transcript_text()
        assert c.wait_closed(5), "not closed after 421:\n" + c.transcript_text()


def test_unknown_and_out_of_sequence_commands(sluice):
    with session(sluice, "relay") as c:
        assert c.cmd("RCPT TO:<a@example.org>").code == 503
        assert c.cmd("DATA").code == 503
        assert c.cmd("VRFY postmaster").code in (252, 502)
        assert c.cmd("NOOP").code == 250
        assert c.cmd("RSET").code == 250
        assert c.cmd("QUIT").code == 221
        assert c.wait_closed(5)


def test_helo_then_mail(sluice):
    with Raw(sluice.ports["relay"], source=TRUSTED_SRC, read_greeting=True) as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 503, c.transcript_text()
        r = c.cmd("HELO client.sluice.test")
        assert r.code == 250
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250, c.transcript_text()


def test_data_timeout_applies_inside_a_message(sluice_factory):
    """timeout_data (here 2 s) governs the wait between blocks of a message, while the
    command timeout stays long: a client that stalls after DATA gets 421 4.4.2 and is
    disconnected; nothing is queued."""
    import time
    sl = sluice_factory(extra_global="timeout_command = 300\ntimeout_data = 2\n")
    tok = token()
    with session(sl, "relay") as c:
        assert c.cmd("MAIL FROM:<alice@acme.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: " + tok.encode() + b"\r\n\r\npartial line")
        t0 = time.monotonic()
        r = c.read_reply(timeout=20)
        assert r.startswith(421, "4.4.2"), c.transcript_text()
        assert time.monotonic() - t0 < 10
        assert c.wait_closed(5)
    assert sl.find_token(tok) == []
