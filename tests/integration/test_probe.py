"""`sluice probe`: which SMTP ports reach a host, what each offers, and a verdict.

Probed against the shared sluiced on 127.0.0.1: its submission (STARTTLS, AUTH
after TLS), submissions (implicit TLS) and relay (STARTTLS, no AUTH) ports, a
free port with nothing listening (refused) and a listening socket that never
answers (the greeting times out).  A port that drops SYNs (filtered) would
need firewall rules as root; it is covered by the namespace tests of the
egress work, not here.
"""
import json
import socket
import subprocess
import time

import pytest

import sluicelib


def probe(sl, *args, timeout=60):
    cmd = [sl.bin["sluice"], "-c", str(sl.conf), "probe", *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=str(sl.root))
    return r, time.monotonic() - t0


def ports_arg(*ports):
    return ",".join(str(p) for p in ports)


@pytest.fixture
def silent_port():
    """A listening socket that accepts (the kernel's backlog) but never speaks."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


def by_port(doc):
    return {p["port"]: p for p in doc["ports"]}


def test_probe_json_against_sluiced(sluice):
    p = sluice.ports
    closed = sluicelib.free_port()
    r, _ = probe(sluice, "127.0.0.1", "--json", "--timeout", "5", "--ports",
                 ports_arg(p["submission"], f"{p['submissions']}/tls", p["relay"], closed))
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    assert doc["host"] == "127.0.0.1"
    assert doc["ok"] is True
    ports = by_port(doc)

    sub = ports[p["submission"]]
    assert sub["state"] == "connected" and sub["smtp"] and sub["submission"]
    assert sub["address"] == "127.0.0.1"
    assert sub["banner"].startswith("220 ") and sluicelib.HOSTNAME in sub["banner"]
    assert "STARTTLS" in sub["extensions"]
    assert sub["starttls"] == {"offered": True, "done": True}
    assert sub["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert sub["tls"]["cipher"]
    # sluiced's first-start certificate is self-signed, for its hostname
    assert sub["tls"]["verified"] is False
    assert sub["tls"]["verify_result"]
    assert f"CN={sluicelib.HOSTNAME}" in sub["tls"]["subject"]
    assert f"DNS:{sluicelib.HOSTNAME}" in sub["tls"]["san"]
    assert sub["tls"]["issuer"]
    assert sub["tls"]["not_after"].endswith("Z")
    assert "PLAIN" in sub["auth"] and "LOGIN" in sub["auth"]
    assert sub["auth_before_tls"] == []  # AUTH only after TLS (DESIGN.md)
    assert "STARTTLS" not in sub["extensions_after_tls"]
    assert sub["error"] is None
    assert sub["elapsed_ms"] >= 0

    imp = ports[p["submissions"]]
    assert imp["implicit_tls"] is True and imp["submission"]
    assert imp["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert imp["starttls"] == {"offered": False, "done": False}
    assert imp["banner"].startswith("220 ")
    assert "PLAIN" in imp["auth"]

    # the relay port refuses 127.0.0.1 (not a trusted network) at once
    relay = ports[p["relay"]]
    assert relay["state"] == "connected"
    assert relay["smtp"] is False and relay["submission"] is False
    assert relay["banner"].startswith("554 ")
    assert relay["error"].startswith("the server refuses this client: 554 ")
    assert relay["extensions"] is None and relay["auth"] is None

    gone = ports[closed]
    assert gone["state"] == "refused" and gone["smtp"] is False
    assert gone["banner"] is None and gone["tls"] is None

    verdict = doc["verdict"]
    assert f"submit on {p['submission']} with STARTTLS (AUTH PLAIN LOGIN after TLS)" in verdict
    assert f"{p['submissions']} (implicit TLS) works too" in verdict
    assert any(v.startswith(f"port {closed}: closed (connection refused") for v in verdict)
    assert any(v.startswith(f"port {p['relay']}: connects, but the server refuses this "
                            "client: 554 ") for v in verdict)
    assert any("does not verify" in v for v in verdict)


def test_probe_text_output(sluice):
    p = sluice.ports
    r, _ = probe(sluice, "127.0.0.1", "--timeout", "5", "--ports",
                 ports_arg(p["submission"], p["relay"]))
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert f"port {p['submission']}: connected to 127.0.0.1" in out
    assert "  starttls   done" in out
    assert "  auth       PLAIN LOGIN (after TLS)" in out
    assert f"  subject    CN={sluicelib.HOSTNAME}" in out
    assert "verdict:\n" in out
    assert f"  submit on {p['submission']} with STARTTLS (AUTH PLAIN LOGIN after TLS)" in out


def test_probe_no_submission_port_exits_1(sluice):
    # the relay port refuses this client: nothing to submit on
    r, _ = probe(sluice, "127.0.0.1", "--json", "--timeout", "5", "--ports",
                 str(sluice.ports["relay"]))
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert any(v.startswith("no port here takes submission") for v in doc["verdict"])


def test_probe_nothing_reaches(sluice):
    closed = [sluicelib.free_port(), sluicelib.free_port()]
    r, elapsed = probe(sluice, "127.0.0.1", "--json", "--ports", ports_arg(*closed))
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert [p["state"] for p in doc["ports"]] == ["refused", "refused"]
    assert doc["verdict"][-1] == "nothing reaches 127.0.0.1: check the name and your network"
    assert elapsed < 30  # start-up included (slow under sanitizers)


def test_probe_silent_server_bounded_by_timeout(sluice, silent_port):
    """A port that connects but never greets: the greeting step times out, on
    time, and the other ports (probed at the same time) are not held up."""
    p = sluice.ports
    r, elapsed = probe(sluice, "127.0.0.1", "--json", "--timeout", "1.5", "--ports",
                       ports_arg(silent_port, p["submission"]))
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    ports = by_port(doc)
    silent = ports[silent_port]
    assert silent["state"] == "connected" and silent["smtp"] is False
    assert silent["error"] == "no greeting within 1.5 s"
    assert 1400 <= silent["elapsed_ms"] < 3500
    assert ports[p["submission"]]["submission"] is True
    assert ports[p["submission"]]["elapsed_ms"] < 1400  # in parallel, not after
    assert any(v == f"port {silent_port}: connects, but no greeting within 1.5 s"
               for v in doc["verdict"])
    assert elapsed < 30  # start-up included; elapsed_ms bounds the check


def test_probe_silent_implicit_tls_bounded(sluice, silent_port):
    r, elapsed = probe(sluice, "127.0.0.1", "--json", "--timeout", "1", "--ports",
                       f"{silent_port}/tls")
    assert r.returncode == 1
    port = json.loads(r.stdout)["ports"][0]
    assert port["implicit_tls"] is True
    assert port["error"] == "the TLS handshake timed out"
    assert 900 <= port["elapsed_ms"] < 2500
    assert elapsed < 30  # start-up included; elapsed_ms bounds the check


def test_probe_plaintext_on_tls_port_fails_cleanly(sluice):
    # STARTTLS-less probing of the implicit TLS port: no greeting in clear text
    r, _ = probe(sluice, "127.0.0.1", "--json", "--timeout", "1", "--ports",
                 str(sluice.ports["submissions"]))
    assert r.returncode == 1
    port = json.loads(r.stdout)["ports"][0]
    assert port["state"] == "connected" and port["smtp"] is False
    assert port["error"]


def test_probe_unresolvable_host(sluice):
    """A name that does not resolve: "nothing reaches".  Run in a network namespace of
    its own, so the lookup cannot leave the machine (no route to any resolver)."""
    cli = f"{sluice.bin['sluice']} -c {sluice.conf}"
    r, why = run_in_netns(f"{cli} probe no-such-host.invalid --timeout 3; echo \"rc=$?\"; "
                          f"{cli} probe --timeout 2 --ports {sluice.ports['submission']}; "
                          f"echo \"rc=$?\"")
    if r is None:
        print(f"SKIPPED: {why}")
        pytest.skip(why)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert out.count("rc=1") == 2, (out, err)
    assert "nothing reaches no-such-host.invalid" in err
    # the default host is the configured hostname (mx.sluice.test), not 127.0.0.1
    assert f"nothing reaches {sluicelib.HOSTNAME}" in err


@pytest.mark.parametrize("args", [
    ["--ports", "0"], ["--ports", "70000"], ["--ports", "25,,587"], ["--ports", "25,25"],
    ["--ports", "x"], ["--ports"], ["--timeout", "0"], ["--timeout", "abc"],
    ["--timeout", "1000"], ["a", "b"], ["bad host!"], ["--raw"],
])
def test_probe_usage_errors(sluice, args):
    r, _ = probe(sluice, *args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert b"usage: sluice [-c FILE] probe [HOST]" in r.stderr


NETNS_SETUP = """
set -e
ip link set lo up
# a veth pair whose far end drops every frame (a neighbour MAC nobody
# has): SYNs to 198.18.0.2 vanish, as behind a firewall that drops them
ip link add v0 type veth peer name v1
ip link set v0 up
ip link set v1 up
ip addr add 198.18.0.1/24 dev v0
ip neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent
"""


def run_in_netns(script, timeout=30):
    """Run script (sh) in a new network namespace; None when the kernel or the
    tools refuse one (the reason is printed, the caller skips)."""
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return None, "needs root, unshare and ip"
    probe_ns = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP],
                              capture_output=True, timeout=timeout)
    if probe_ns.returncode != 0:
        return None, ("network namespace with a veth pair refused: " +
                      probe_ns.stderr.decode(errors="replace").strip())
    r = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP + "set +e\n" + script],
                       capture_output=True, timeout=timeout)
    return r, None


def test_probe_filtered_and_unreachable_in_netns(sluice):
    """Port 25 filtered (SYNs dropped) reads as the port-25 block; both ports
    time out together, within the timeout; a network without a route is
    unreachable at once."""
    cli = f"{sluice.bin['sluice']} -c {sluice.conf}"
    script = (f"{cli} probe 198.18.0.2 --ports 25,587 --timeout 1 --json; echo \"rc=$?\"; "
              f"{cli} probe 203.0.113.9 --ports 25 --timeout 1 --json; echo \"rc=$?\"")
    t0 = time.monotonic()
    r, why = run_in_netns(script)
    elapsed = time.monotonic() - t0
    if r is None:
        print(f"SKIPPED: {why}")
        pytest.skip(why)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr.decode())
    first, second = out.split("rc=1\n")[:2]
    doc = json.loads(first)
    ports = by_port(doc)
    assert ports[25]["state"] == "timeout" and ports[587]["state"] == "timeout"
    for p in ports.values():
        assert 900 <= p["elapsed_ms"] < 2500
    assert doc["verdict"] == [
        "port 25: blocked (timed out after 1.0 s: filtered by a firewall, likely your "
        "network's port-25 block)",
        "port 587: blocked (timed out after 1.0 s: filtered by a firewall on the way)",
        "nothing reaches 198.18.0.2: check the name and your network",
    ]
    doc = json.loads(second)
    assert doc["ports"][0]["state"] == "unreachable"
    assert doc["verdict"][0].startswith("port 25: unreachable (Network is unreachable")
    # the two ports in parallel, not one after the other: per-port elapsed_ms above
    assert elapsed < 30
