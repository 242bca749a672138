"""`sluice egress`: the port-25 block, in network namespaces made by the test.

    cust   198.18.1.2 (tenant acme), 198.18.1.3 (tenant beta)   customer host
    gw     198.18.1.1 | 198.18.2.1 | 198.18.4.1 | 198.18.8.1   gateway: routes, holds
                                                                the rules (sluice egress
                                                                apply runs here)
    relay  198.18.2.10   sluice's host: a real sluiced, relay on 25, submission on 587
    priv   198.18.4.25   a host inside the private subnet 198.18.4.0/24, port 25
    inet   198.18.8.25   an "internet" MX, port 25

Every address is in 198.18.0.0/15 and lives in namespaces the test creates and
deletes; nothing leaves the machine.  The listeners in priv and inet are tiny
SMTP greeters started (and stopped by PID) by the test.  Where the kernel or the
tools refuse namespaces or nftables, the tests skip and say why.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import sluicelib

CUST, CUST2 = "198.18.1.2", "198.18.1.3"
RELAY, PRIV, INET = "198.18.2.10", "198.18.4.25", "198.18.8.25"

# A one-connection-at-a-time SMTP greeter: 220, then 250/221 to anything.
GREETER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 25))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        c.sendall(b"220 " + sys.argv[2].encode() + b" ESMTP test\r\n")
        buf = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.upper().startswith(b"QUIT"):
                    c.sendall(b"221 bye\r\n")
                    raise EOFError
                c.sendall(b"250 " + sys.argv[2].encode() + b"\r\n")
    except (OSError, EOFError):
        pass
    finally:
        c.close()
"""

# Connect from a namespace: prints {"state": connected|refused|timeout|error, ...}.
CONNECT = r"""
import json, socket, sys, time
host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
if src:
    s.bind((src, 0))
t0 = time.monotonic()
try:
    s.connect((host, port))
    banner = s.recv(512).decode(errors="replace").strip()
    s.sendall(b"QUIT\r\n")
    out = {"state": "connected", "banner": banner}
except ConnectionRefusedError:
    out = {"state": "refused"}
except socket.timeout:
    out = {"state": "timeout"}
except OSError as e:
    out = {"state": "error", "error": str(e)}
out["ms"] = int((time.monotonic() - t0) * 1000)
s.close()
print(json.dumps(out))
"""


def run(args, check=True, timeout=30, **kw):
    r = subprocess.run(args, capture_output=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} -> {r.returncode}\n{r.stdout.decode()}\n"
                             f"{r.stderr.decode()}")
    return r


class Net:
    """The five namespaces, their links and the processes started in them."""

    def __init__(self, tag):
        self.tag = tag
        self.ns = {n: f"sl{tag}-{n}" for n in ("cust", "gw", "relay", "priv", "inet")}
        self.made = []
        self.procs = []

    def sh(self, ns, script, check=True):
        return run(["ip", "netns", "exec", self.ns[ns], "sh", "-ec", script], check=check)

    def build(self):
        for n in self.ns.values():
            run(["ip", "netns", "add", n])
            self.made.append(n)
        for n in self.ns:
            self.sh(n, "ip link set lo up")
        # one veth pair per host, gateway side first
        links = [("cust", "198.18.1.1/24", ["198.18.1.2/24", "198.18.1.3/24"], "198.18.1.1"),
                 ("relay", "198.18.2.1/24", ["198.18.2.10/24"], "198.18.2.1"),
                 ("priv", "198.18.4.1/24", ["198.18.4.25/24"], "198.18.4.1"),
                 ("inet", "198.18.8.1/24", ["198.18.8.25/24"], "198.18.8.1")]
        for host, gw_addr, addrs, via in links:
            g, h = f"g{host}", f"h{host}"
            run(["ip", "link", "add", g, "netns", self.ns["gw"], "type", "veth", "peer",
                 "name", h, "netns", self.ns[host]])
            self.sh("gw", f"ip addr add {gw_addr} dev {g}; ip link set {g} up")
            self.sh(host, "".join(f"ip addr add {a} dev {h}; " for a in addrs) +
                    f"ip link set {h} up; ip route add default via {via}")
        self.sh("gw", "sysctl -qw net.ipv4.ip_forward=1")

    def start(self, ns, args, ready=None, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[ns], *args],
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.procs.append(p)
        if ready is not None:
            line = p.stdout.readline()
            assert ready in line.decode(), line
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except (ProcessLookupError, PermissionError):
                pass
        for n in reversed(self.made):
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=30)

    def connect(self, ns, host, port, src=""):
        r = run(["ip", "netns", "exec", self.ns[ns], sys.executable, "-c", CONNECT, host,
                 str(port), src])
        return json.loads(r.stdout)


def refuse_reason():
    """Why namespaces with nftables cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed"
    name = f"slprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, timeout=30)
    if r.returncode != 0:
        return "the kernel refuses network namespaces: " + r.stderr.decode().strip()
    try:
        r = subprocess.run(["ip", "netns", "exec", name, "nft", "add table inet sltest"],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            return "the kernel refuses nftables in a namespace: " + r.stderr.decode().strip()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    return None


@pytest.fixture(scope="module")
def net():
    why = refuse_reason()
    if why is not None:
        print(f"SKIPPED: egress namespace tests: {why}")
        pytest.skip(why)
    binaries = sluicelib.find_binaries()
    root = Path(tempfile.mkdtemp(prefix="sluice-it-egress-"))
    os.chmod(root, 0o755)
    n = Net(str(os.getpid() % 100000))
    n.bin = binaries
    n.root = root
    n.conf = root / "sluice.conf"
    try:
        n.build()
        (root / "state").mkdir()
        os.chmod(root / "state", 0o755)
        n.conf.write_text(f"""# egress integration test (generated)
hostname = {sluicelib.HOSTNAME}
user = {sluicelib.DAEMON_USER}
store = sqlite:state/sluice.db
spool_dir = state/spool
tls_cert = state/tls/cert.pem
tls_key = state/tls/key.pem
control_socket = state/sluiced.sock
delivery = off
egress_customer_networks = 198.18.1.0/24
egress_relay_addresses = {RELAY}
egress_private_networks = 198.18.4.0/24
egress_log_rate = 5
egress_apply = on

[listener relay]
listen = {RELAY}:25
tls = starttls
mode = relay

[listener submission]
listen = {RELAY}:587
tls = starttls
mode = submission
""")
        n.cli("tenant", "add", "acme", "--password-stdin", input=b"acme-pw\n")
        n.cli("network", "add", "acme", f"{CUST}/32")
        n.cli("tenant", "add", "beta", "--password-stdin", input=b"beta-pw\n")
        n.cli("network", "add", "beta", f"{CUST2}/32")
        log = open(root / "sluiced.log", "wb")
        n.sluiced = n.start("relay", [binaries["sluiced"], "-c", str(n.conf)], stdout=log,
                            stderr=log, cwd=str(root))
        log.close()
        for host, ns in ((PRIV, "priv"), (INET, "inet")):
            n.start(ns, [sys.executable, "-c", GREETER, host, f"{ns}.test"], ready="ready",
                    stdout=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while n.connect("relay", RELAY, 587)["state"] != "connected":
            assert n.sluiced.poll() is None, (root / "sluiced.log").read_text()
            assert time.monotonic() < deadline, "sluiced did not listen in 30 s"
            time.sleep(0.2)
        n.cli_gw("egress", "apply")
        yield n
    finally:
        n.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _cli(n, ns, args, input=None, check=True):
    cmd = [n.bin["sluice"], "-c", str(n.conf), *args]
    if ns is not None:
        cmd = ["ip", "netns", "exec", n.ns[ns], *cmd]
    return run(cmd, input=input, check=check, cwd=str(n.root), timeout=60)


Net.cli = lambda n, *a, input=None, check=True: _cli(n, None, a, input, check)
Net.cli_gw = lambda n, *a, input=None, check=True: _cli(n, "gw", a, input, check)


def blocked(net):
    return {b["address"]: b for b in
            json.loads(net.cli_gw("egress", "blocked", "--json").stdout)}


def test_customer_to_internet_25_is_refused_fast(net):
    r = net.connect("cust", INET, 25, CUST)
    assert r["state"] == "refused", r
    assert r["ms"] < 1000  # a TCP reset, not a timeout
    # the MX is there: a host outside the customer networks reaches it
    r = net.connect("priv", INET, 25)
    assert r["state"] == "connected" and "inet.test" in r["banner"], r


def test_customer_to_sluice_587_and_25_works(net):
    for port in (587, 25):
        r = net.connect("cust", RELAY, port, CUST)
        assert r["state"] == "connected", (port, r)
        assert r["banner"].startswith("220 ") and sluicelib.HOSTNAME in r["banner"], r


def test_private_subnet_port_25_stays_open(net):
    r = net.connect("cust", PRIV, 25, CUST)
    assert r["state"] == "connected" and "priv.test" in r["banner"], r


def test_counters_name_the_customer(net):
    before = blocked(net).get(CUST2, {}).get("attempts", 0)
    for _ in range(3):
        assert net.connect("cust", INET, 25, CUST2)["state"] == "refused"
    b = blocked(net)
    assert b[CUST2]["attempts"] == before + 3, b
    assert b[CUST2]["tenant"] == "beta"
    text = net.cli_gw("egress", "blocked").stdout.decode()
    assert any(line.split()[:1] == [CUST2] and line.split()[-1] == "beta"
               for line in text.splitlines()), text
    # the per-tenant sums (what the containment score reads)
    sums = text.split("\nTENANT ", 1)[1].splitlines()[1:]
    assert f"beta {before + 3} 1" in [" ".join(line.split()) for line in sums], text
    st = json.loads(net.cli_gw("egress", "status", "--json").stdout)
    assert st["loaded"] is True and st["rejected_packets"] >= 3
    text = net.cli_gw("egress", "status").stdout.decode()
    assert text.startswith("table inet sluice loaded\n"), text
    assert "chain port25 {" in text and "counter packets" in text and "reject with tcp reset" in text
    assert f"{CUST2} counter packets {before + 3} " in text, text
    assert st["customer_networks"] == 1 and st["relay_addresses"] == 1
    # an apply keeps the counts (the table is replaced, the counts carried)
    net.cli_gw("egress", "apply")
    assert blocked(net)[CUST2]["attempts"] == before + 3


def test_exception_opens_port_25_and_its_expiry_closes_it(net):
    assert net.connect("cust", INET, 25, CUST)["state"] == "refused"
    r = net.cli_gw("egress", "allow", f"{CUST}/32", "--tenant", "acme", "--reason",
                   "test mail server", "--expires", "5s")
    assert b"table inet sluice reloaded" in r.stdout, r.stdout
    t0 = time.monotonic()
    r = net.connect("cust", INET, 25, CUST)
    assert r["state"] == "connected" and "inet.test" in r["banner"], r
    # only that source: the other customer address stays blocked
    assert net.connect("cust", INET, 25, CUST2)["state"] == "refused"
    st = json.loads(net.cli_gw("egress", "status", "--json").stdout)
    assert [x["cidr"] for x in st["exceptions"]] == [f"{CUST}/32"]
    # the kernel removes the element when its timeout runs out: no apply
    deadline = t0 + 15
    while net.connect("cust", INET, 25, CUST)["state"] == "connected":
        assert time.monotonic() < deadline, "the exception did not expire"
        time.sleep(0.5)
    # 5 s from the allow, counted in whole seconds at render: at least ~3 s after t0
    assert time.monotonic() - t0 >= 2.5
    assert json.loads(net.cli_gw("egress", "status", "--json").stdout)["exceptions"] == []
    listed = json.loads(net.cli_gw("egress", "list", "--all", "--json").stdout)
    assert listed[-1]["cidr"] == f"{CUST}/32" and listed[-1]["state"] == "expired"


def _kernel_timeout(text, addr):
    """Seconds of the element timeout nft prints for addr ("timeout 1m40s")."""
    import re
    m = re.search(re.escape(addr) + r" timeout ((?:\d+h)?(?:\d+m)?(?:\d+s)?)", text)
    assert m, text
    secs = 0
    for n, unit in re.findall(r"(\d+)([hms])", m.group(1)):
        secs += int(n) * {"h": 3600, "m": 60, "s": 1}[unit]
    return secs


def test_exception_survives_a_reboot_with_the_time_left(net):
    import sqlite3
    net.cli_gw("egress", "allow", f"{CUST}/32", "--tenant", "acme", "--reason", "reboot",
               "--expires", "1h")
    net.cli_gw("egress", "allow", f"{CUST2}/32", "--tenant", "beta", "--reason", "gone",
               "--expires", "1h")
    listed = json.loads(net.cli_gw("egress", "list", "--json").stdout)
    ids = {x["cidr"]: x["id"] for x in listed}
    # a reboot: the kernel forgets every table ...
    net.sh("gw", "nft delete table inet sluice")
    assert net.connect("cust", INET, 25, CUST2)["state"] == "connected"  # no rules at all
    out = net.cli_gw("egress", "status").stdout.decode()
    assert out == "table inet sluice is not loaded (run 'sluice egress apply')\n", out
    assert json.loads(net.cli_gw("egress", "status", "--json").stdout)["loaded"] is False
    assert json.loads(net.cli_gw("egress", "blocked", "--json").stdout) == []
    # ... while time passes: 100 s left for acme's, beta's ran out meanwhile
    db = sqlite3.connect(str(net.root / "state" / "sluice.db"), timeout=10)
    now = int(time.time())
    db.execute("UPDATE egress_exceptions SET expires = ? WHERE id = ?",
               (now + 100, ids[f"{CUST}/32"]))
    db.execute("UPDATE egress_exceptions SET expires = ? WHERE id = ?",
               (now - 1, ids[f"{CUST2}/32"]))
    db.commit()
    db.close()
    # the apply at boot gives the kernel the time left, and drops the expired
    net.cli_gw("egress", "apply")
    text = net.sh("gw", "nft list set inet sluice exceptions4").stdout.decode()
    assert 85 <= _kernel_timeout(text, CUST) <= 100, text
    assert "tenant acme" in text and CUST2 not in text, text
    assert net.connect("cust", INET, 25, CUST)["state"] == "connected"
    assert net.connect("cust", INET, 25, CUST2)["state"] == "refused"
    net.cli_gw("egress", "revoke", str(ids[f"{CUST}/32"]))
    assert net.connect("cust", INET, 25, CUST)["state"] == "refused"


def test_request_approve_and_suspend_revokes(net):
    r = net.cli_gw("egress", "request", f"{CUST2}/32", "--tenant", "beta", "--reason",
                   "our own MX", "--expires", "1h")
    rid = r.stdout.split()[1].rstrip(b":").decode()
    assert net.connect("cust", INET, 25, CUST2)["state"] == "refused"  # pending only
    net.cli_gw("egress", "approve", rid)
    assert net.connect("cust", INET, 25, CUST2)["state"] == "connected"
    r = net.cli_gw("tenant", "suspend", "beta")
    assert b"1 egress exception of tenant 'beta' revoked" in r.stdout, r.stdout
    assert b"table inet sluice reloaded" in r.stdout
    assert net.connect("cust", INET, 25, CUST2)["state"] == "refused"
    audit = json.loads(net.cli_gw("egress", "audit", "beta", "--json").stdout)
    assert [a["action"] for a in audit][:4] == ["revoke", "approve", "allow", "request"]
    assert audit[0]["detail"] == "tenant suspended"
    net.cli_gw("tenant", "resume", "beta")


def test_tenant_suspended_elsewhere_loses_its_exceptions_at_apply(net):
    """A tenant suspended without the CLI (sluiced's own containment, say) keeps its
    exception rows, but the next apply leaves them out of the table."""
    import sqlite3

    def set_suspended(v):
        db = sqlite3.connect(str(net.root / "state" / "sluice.db"), timeout=10)
        db.execute("UPDATE tenants SET suspended = ? WHERE name = 'acme'", (v,))
        db.commit()
        db.close()

    net.cli_gw("egress", "allow", f"{CUST}/32", "--tenant", "acme", "--reason", "held",
               "--expires", "1h")
    assert net.connect("cust", INET, 25, CUST)["state"] == "connected"
    set_suspended(1)
    try:
        net.cli_gw("egress", "apply")
        assert net.connect("cust", INET, 25, CUST)["state"] == "refused"
        x = json.loads(net.cli_gw("egress", "list", "--json").stdout)[-1]
        assert x["cidr"] == f"{CUST}/32" and x["state"] == "held", x
    finally:
        set_suspended(0)
    net.cli_gw("egress", "apply")
    assert net.connect("cust", INET, 25, CUST)["state"] == "connected"
    net.cli_gw("egress", "revoke", str(x["id"]))
    assert net.connect("cust", INET, 25, CUST)["state"] == "refused"


def test_other_tables_are_left_alone(net):
    net.sh("gw", "nft add table inet operator; nft add chain inet operator c; "
                 "nft add rule inet operator c counter")
    net.cli_gw("egress", "apply")
    net.cli_gw("egress", "apply")
    assert b"table inet operator" in net.sh("gw", "nft list tables").stdout
    assert net.sh("gw", "nft list table inet sluice | grep -c 'chain port25'").stdout.strip() \
        == b"1"
    net.sh("gw", "nft delete table inet operator")


def test_probe_from_the_customer(net):
    r = _cli(net, "cust", ["probe", RELAY, "--ports", "25,587", "--timeout", "5", "--json"])
    doc = json.loads(r.stdout)
    ports = {p["port"]: p for p in doc["ports"]}
    assert ports[587]["state"] == "connected" and ports[587]["submission"] is True, ports
    assert ports[25]["state"] == "connected" and ports[25]["smtp"] is True, ports
    assert r.returncode == 0
    r = _cli(net, "cust", ["probe", INET, "--ports", "25", "--timeout", "3", "--json"],
             check=False)
    doc = json.loads(r.stdout)
    assert doc["ports"][0]["state"] == "refused"
    assert doc["verdict"][0].startswith(f"port 25: refused (connection refused: nothing "
                                        f"listens on {INET}:25, or a firewall rejects it, "
                                        "as a port-25 block does)"), doc["verdict"]
