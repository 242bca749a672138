#!/usr/bin/env python3
"""Test DNS server: nsd on 127.0.0.1:<free port> serving zones under sluice.test.

Everything is made at start in a fresh work directory: zone files, DNSSEC
keys (ldns-keygen), signed zones (ldns-signzone), the trust anchor file for
the resolver, a self-signed certificate whose SPKI SHA-256 is published as
TLSA 3 1 1, and nsd's own configuration (no chroot, no user switch, pid,
log and state files inside the work directory), so it runs without root
and without touching /etc or /var.  Nothing listens or is queried outside
loopback: the zones only name 127.0.0.0/8 and ::1 addresses, and the
resolver under test is pointed at this server as its only forwarder.

From Python (pytest):

    from dnsserver import TestDNS
    dns = TestDNS(tmp_path / "dns")
    dns.start()              # returns once nsd answers
    dns.server               # "127.0.0.1@PORT": net_resolver_config.server
    dns.anchor_file          # net_resolver_config.trust_anchor_file
    dns.stop()               # SIGTERM to nsd's PID, then wait for it

The resolver must also be given the libunbound setting
"local-zone: test. transparent" (RESOLVER_OPTION below): libunbound
answers NXDOMAIN for all of .test itself (RFC 6761) unless told not to.
SilentDNS() is a server that never answers, for timeouts.

From a shell or a C test:

    dnsserver.py serve DIR

prints key=value lines (pid, port, server, anchor, cert, key, tlsa311) and
"ready", then serves until stdin reaches EOF or SIGTERM/SIGINT arrives, and
stops nsd by its PID before exiting.  A test that holds the write end of
the stdin pipe therefore cannot leak nsd even when it crashes.

The names that exist are listed in tests/dns/README.
"""

import datetime
import hashlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

RESOLVER_OPTION = "local-zone: test. transparent"

ZONE = "sluice.test"
SIGNED_ZONE = "dnssec.sluice.test"
BOGUS_ZONE = "bogus.sluice.test"

# A fixed 32-byte SHA-256-sized TLSA payload: 00 01 02 ... 1f.
FIXED_TLSA_HEX = bytes(range(32)).hex()

SOA = "@ SOA ns.sluice.test. hostmaster.sluice.test. 1 3600 600 86400 300\n@ NS ns.sluice.test.\n"

UNSIGNED_ZONE = """$ORIGIN sluice.test.
$TTL 300
{soa}
ns                 A     127.0.0.1

; several MX at different preferences, listed out of order
multi              MX    20 mx2.multi
multi              MX    10 mx1.multi
multi              MX    30 mx3.multi
mx1.multi          A     127.0.0.11
mx1.multi          AAAA  ::1
mx2.multi          A     127.0.0.12
mx3.multi          AAAA  ::1

; two MX of equal preference and a backup
equal              MX    10 mxa.equal
equal              MX    10 mxb.equal
equal              MX    20 mxc.equal
mxa.equal          A     127.0.0.21
mxb.equal          A     127.0.0.22
mxc.equal          A     127.0.0.23

; no MX: the implicit MX is the domain itself
nomx               A     127.0.0.31
nomx               AAAA  ::1

; RFC 7505 null MX
nullmx             MX    0 .

; MX hosts without addresses: one does not exist, one has only TXT
noaddr             MX    10 missing.noaddr
noaddr             MX    20 empty.noaddr
empty.noaddr       TXT   "no address here"
partial            MX    10 missing.noaddr
partial            MX    20 mx.partial
mx.partial         A     127.0.0.41

; MX host that is a CNAME (RFC 2181 10.3 says it must not be; it happens)
cname              MX    10 alias.cname
alias.cname        CNAME real.cname
real.cname         A     127.0.0.51

; MX exchange written as an IPv4 address
numeric            MX    10 127.0.0.9.

; MX host in a zone the server fails to load (SERVFAIL)
lame               MX    10 mx.servfail.sluice.test.

; exists, but neither MX nor address
txtonly            TXT   "only text"

; only IPv6
v6only             MX    10 mx.v6only
mx.v6only          AAAA  ::1

; TXT records (SPF/DKIM/verification)
spf                TXT   "v=spf1 ip4:127.0.0.1 -all"
split              TXT   "part one, " "part two"
split              TXT   ""

; the child zones served by this same server
dnssec             NS    ns.sluice.test.
bogus              NS    ns.sluice.test.
servfail           NS    ns.sluice.test.
dead               NS    ns.sluice.test.
mail               NS    ns.sluice.test.
"""

# mail.sluice.test: sending domains under test (issue 5).  Empty at start;
# a test writes the records `sluice domain add` printed with set_mail_zone().
MAIL_ZONE = "mail.sluice.test"
MAIL_ZONE_TEXT = """$ORIGIN mail.sluice.test.
$TTL 1
@ SOA ns.sluice.test. hostmaster.sluice.test. {serial} 3600 600 86400 1
@ NS ns.sluice.test.
"""

SIGNED_ZONE_TEXT = """$ORIGIN dnssec.sluice.test.
$TTL 300
{soa}
@                  MX    10 mx
mx                 A     127.0.0.61
mx                 AAAA  ::1
_25._tcp.mx        TLSA  3 1 1 {tlsa311}
_25._tcp.mx        TLSA  2 0 1 {fixed}
_2525._tcp.mx      TLSA  3 1 1 {tlsa311}
nomx               A     127.0.0.62
notlsa             MX    10 plain
plain              A     127.0.0.63
insecuremx         MX    10 mx2.multi.sluice.test.
"""

BOGUS_ZONE_TEXT = """$ORIGIN bogus.sluice.test.
$TTL 300
{soa}
@                  MX    10 mx
good               MX    10 mx
mx                 A     127.0.0.71
_25._tcp.mx        TLSA  3 1 1 {tlsa311}
badaddr            MX    10 mxbad
mxbad              A     127.0.0.72
"""

# (owner, type, rdata as signed, rdata served): the signatures stay those of
# the first form, so a validator sees these RRsets as bogus.
BOGUS_TAMPER = [
    ("bogus.sluice.test.", "MX", "10 mx.bogus.sluice.test.", "20 mx.bogus.sluice.test."),
    ("mxbad.bogus.sluice.test.", "A", "127.0.0.72", "127.0.0.73"),
    ("_25._tcp.mx.bogus.sluice.test.", "TLSA", None, None),  # flips one hex digit
]

NSD_CONF = """server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    server-count: 1
    reuseport: no
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    database: ""
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    logfile: "{dir}/nsd.log"
    cookie-secret-file: "{dir}/cookiesecrets.txt"
    verbosity: 2
    hide-version: yes
    zonefiles-write: 0
remote-control:
    control-enable: no
zone:
    name: "sluice.test"
    zonefile: "sluice.test.zone"
zone:
    name: "dnssec.sluice.test"
    zonefile: "dnssec.sluice.test.zone.signed"
zone:
    name: "bogus.sluice.test"
    zonefile: "bogus.sluice.test.zone.signed"
zone:
    name: "servfail.sluice.test"
    zonefile: "servfail.sluice.test.zone.missing"
zone:
    name: "dead.sluice.test"
    zonefile: "dead.sluice.test.zone.missing"
zone:
    name: "mail.sluice.test"
    zonefile: "mail.sluice.test.zone"
"""


def _tool(name):
    for path in (shutil.which(name), "/usr/sbin/" + name, "/usr/bin/" + name):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"dnsserver: {name} not found (scripts/deps.sh installs it)")


def _free_port():
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        return port
    raise RuntimeError("dnsserver: no free port")


def _soa_query(port):
    """A minimal SOA query for sluice.test.; True when nsd answers."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in ZONE.split(".")) + b"\0"
    pkt = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x06\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(pkt, ("127.0.0.1", port))
        data, _ = s.recvfrom(512)
        return len(data) >= 12 and data[:2] == b"\x12\x34" and (data[3] & 0x0F) == 0
    except OSError:
        return False
    finally:
        s.close()


class TestDNS:
    __test__ = False  # not a pytest test class

    def __init__(self, workdir, port=None):
        self.dir = os.path.abspath(str(workdir))
        self.port = port
        self.proc = None
        self.anchor_file = os.path.join(self.dir, "anchors.ds")
        self.cert_file = os.path.join(self.dir, "mx.dnssec.sluice.test.crt")
        self.key_file = os.path.join(self.dir, "mx.dnssec.sluice.test.key")
        self.tlsa311 = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def server(self):
        return f"127.0.0.1@{self.port}"

    @property
    def info(self):
        """pid, port, server, anchor, cert, key, tlsa311, dir"""
        return {
            "pid": self.pid,
            "port": self.port,
            "server": self.server,
            "anchor": self.anchor_file,
            "cert": self.cert_file,
            "key": self.key_file,
            "tlsa311": self.tlsa311,
            "dir": self.dir,
        }

    # ---- material ----------------------------------------------------------

    def _run(self, *args, cwd=None):
        r = subprocess.run(args, cwd=cwd or self.dir, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"dnsserver: {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def _make_cert(self):
        self._run(_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key_file,
                  "-out", self.cert_file, "-days", "30", "-subj", "/CN=mx.dnssec.sluice.test",
                  "-addext", "subjectAltName=DNS:mx.dnssec.sluice.test")
        pub = subprocess.run([_tool("openssl"), "x509", "-in", self.cert_file, "-noout",
                              "-pubkey"], capture_output=True, check=True).stdout
        der = subprocess.run([_tool("openssl"), "pkey", "-pubin", "-outform", "DER"],
                             input=pub, capture_output=True, check=True).stdout
        self.tlsa311 = hashlib.sha256(der).hexdigest()

    def _sign(self, zone, text):
        keydir = os.path.join(self.dir, "keys")
        os.makedirs(keydir, exist_ok=True)
        ksk = self._run(_tool("ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", zone,
                        cwd=keydir).strip()
        zsk = self._run(_tool("ldns-keygen"), "-a", "ECDSAP256SHA256", zone,
                        cwd=keydir).strip()
        path = os.path.join(self.dir, zone + ".zone")
        with open(path, "w") as f:
            f.write(text)
        # an inception a day back so a clock a little behind still validates
        now = datetime.datetime.now(datetime.timezone.utc)
        inception = (now - datetime.timedelta(days=1)).strftime("%Y%m%d")
        expiration = (now + datetime.timedelta(days=30)).strftime("%Y%m%d")
        self._run(_tool("ldns-signzone"), "-i", inception, "-e", expiration, "-o", zone,
                  "-f", path + ".signed", path, os.path.join(keydir, zsk),
                  os.path.join(keydir, ksk))
        with open(os.path.join(keydir, ksk + ".ds")) as f:
            return f.read().strip()

    def _tamper(self, path):
        out = []
        done = set()
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            fields = line.split()
            for i, (owner, rtype, old, new) in enumerate(BOGUS_TAMPER):
                if len(fields) < 5 or fields[0] != owner or fields[3] != rtype:
                    continue
                rdata = " ".join(fields[4:])
                if old is None:
                    last = fields[-1]
                    flipped = ("0" if last[-1] != "0" else "1")
                    line = line[: line.rstrip().rfind(last)] + last[:-1] + flipped
                    done.add(i)
                elif rdata == old:
                    line = line.replace(old, new)
                    done.add(i)
            out.append(line)
        if len(done) != len(BOGUS_TAMPER):
            raise RuntimeError("dnsserver: could not find every record to tamper with")
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")

    def prepare(self):
        """Write every file nsd and the resolver need; no process is started."""
        os.makedirs(self.dir, exist_ok=True)
        self._make_cert()
        soa = SOA
        with open(os.path.join(self.dir, ZONE + ".zone"), "w") as f:
            f.write(UNSIGNED_ZONE.format(soa=soa))
        anchors = [
            self._sign(SIGNED_ZONE, SIGNED_ZONE_TEXT.format(soa=soa, tlsa311=self.tlsa311,
                                                            fixed=FIXED_TLSA_HEX)),
            self._sign(BOGUS_ZONE, BOGUS_ZONE_TEXT.format(soa=soa, tlsa311=self.tlsa311)),
        ]
        self._tamper(os.path.join(self.dir, BOGUS_ZONE + ".zone.signed"))
        self._write_mail_zone([])
        with open(self.anchor_file, "w") as f:
            f.write("\n".join(anchors) + "\n")

    def _write_mail_zone(self, records):
        self.mail_serial = getattr(self, "mail_serial", 0) + 1
        with open(os.path.join(self.dir, MAIL_ZONE + ".zone"), "w") as f:
            f.write(MAIL_ZONE_TEXT.format(serial=self.mail_serial))
            for r in records:
                f.write(r.rstrip("\n") + "\n")

    def set_mail_zone(self, records, timeout=10.0):
        """Serve these zone-file lines (absolute names under mail.sluice.test., e.g.
        what `sluice domain add` prints) in mail.sluice.test instead of what it held:
        nsd is restarted on the same port (TTL 1, so resolvers do not keep old data)."""
        self._write_mail_zone(records)
        if self.proc is not None:
            self._kill(self.proc)
            self.proc = None
            for _ in range(20):
                proc = self._launch(self.port, timeout)
                if proc is not None:
                    self.proc = proc
                    return
                time.sleep(0.2)
            raise RuntimeError("dnsserver: nsd did not restart; see " +
                               os.path.join(self.dir, "nsd.log"))

    # ---- process -----------------------------------------------------------

    def _launch(self, port, timeout):
        conf = os.path.join(self.dir, "nsd.conf")
        with open(conf, "w") as f:
            f.write(NSD_CONF.format(port=port, dir=self.dir))
        log = open(os.path.join(self.dir, "nsd.stderr"), "ab")
        proc = subprocess.Popen([_tool("nsd"), "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None  # most likely the port was taken meanwhile
            if _soa_query(port):
                return proc
            time.sleep(0.05)
        self._kill(proc)
        return None

    @staticmethod
    def _kill(proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start(self, timeout=10.0):
        if self.tlsa311 is None:
            self.prepare()
        for _ in range(5):
            port = self.port or _free_port()
            proc = self._launch(port, timeout)
            if proc is not None:
                self.port, self.proc = port, proc
                return self
            if self.port:
                break
        raise RuntimeError("dnsserver: nsd did not start; see " +
                           os.path.join(self.dir, "nsd.log"))

    def stop(self):
        if self.proc is not None:
            self._kill(self.proc)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentDNS:
    """A "server" on 127.0.0.1 that takes queries (UDP, and TCP connections)
    and never answers: point a resolver at .server to test timeouts."""

    __test__ = False

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.server = f"127.0.0.1@{self.port}"

    def close(self):
        self.udp.close()
        self.tcp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve(workdir):
    dns = TestDNS(workdir)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    try:
        dns.start()
        for k, v in dns.info.items():
            print(f"{k}={v}")
        print("ready", flush=True)
        while not stopping:
            try:
                r, _, _ = select.select([sys.stdin], [], [], 0.5)
            except InterruptedError:
                continue
            if r and not os.read(sys.stdin.fileno(), 4096):
                break  # the parent is gone or done
            if dns.proc.poll() is not None:
                print("dnsserver: nsd exited", file=sys.stderr)
                return 1
    finally:
        dns.stop()
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "serve":
        return _serve(argv[2])
    if len(argv) == 3 and argv[1] == "prepare":
        dns = TestDNS(argv[2])
        dns.prepare()
        print(f"anchor={dns.anchor_file}\ntlsa311={dns.tlsa311}")
        return 0
    print("usage: dnsserver.py serve DIR | prepare DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
