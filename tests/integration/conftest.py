"""Integration fixtures for sluice: real binaries over real (loopback) sockets.

The binaries come from $SLUICE_BUILD (default "build", relative to the repo
root): $SLUICE_BUILD/src/cmd/sluiced and $SLUICE_BUILD/src/cmd/sluice.

Each daemon gets its own folder (mode 0755 so that sluiced, which drops from
root to `nobody`, can reach it), a configuration with four listeners on free
loopback ports, and the tenants below, created with the CLI *before* the
daemon starts:

    acme   password ACME_PW   domains acme.example (verified), unverified.example
                              (not verified); trusted network 127.0.0.2/32
    other  password OTHER_PW  domain other.example (verified)
    brute  password BRUTE_PW  domain brute.example (verified)  (lock-out tests)
    susp   password SUSP_PW   domain susp.example (verified)   (suspension tests)

Fixtures:
    sluice          one shared daemon for the session (restarted if it died)
    sluice_factory  fresh daemons for tests that change global state
Helpers (module `sluicelib`): SMTP raw client, TLS context, queue look-ups.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sluicelib  # noqa: E402

try:
    import pytest_timeout  # noqa: F401

    HAVE_TIMEOUT = True
except ImportError:  # the marker is then a no-op
    HAVE_TIMEOUT = False

DEFAULT_TIMEOUT = 180  # seconds per test, when pytest-timeout is installed


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    if not HAVE_TIMEOUT:
        config.addinivalue_line("markers", "timeout(seconds): per-test time limit (pytest-timeout)")


def pytest_collection_modifyitems(config, items):
    if not HAVE_TIMEOUT:
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def binaries():
    return sluicelib.find_binaries()


@pytest.fixture(scope="session")
def _shared_sluice(binaries):
    d = sluicelib.Sluice.create(binaries, label="shared")
    d.start()
    yield d
    rc = d.stop()
    if rc != 0:
        pytest.fail(f"shared sluiced exited {rc} after SIGTERM (want 0); log tail:\n"
                    f"{d.log_tail(60)}", pytrace=False)
    d.cleanup()


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def sluice(_shared_sluice, request):
    """The shared daemon, running.  On failure, its log lines of this test are printed."""
    d = _shared_sluice
    if not d.running():
        print(f"sluiced (shared) had exited (rc={d.proc.returncode if d.proc else None}); "
              f"restarting. Log tail:\n{d.log_tail(60)}")
        d.start()
    mark = d.log_size()
    yield d
    if _failed(request):
        print(f"\n----- sluiced log ({d.root}) during this test -----")
        print(d.log_since(mark)[-20000:])
    if not d.running():
        pytest.fail(f"sluiced exited during the test (rc={d.proc.returncode}); "
                    f"log tail:\n{d.log_tail(60)}")


@pytest.fixture
def sluice_factory(binaries, request):
    """Make fresh daemons (call it; returns a started Sluice).  Stopped afterwards."""
    made = []

    def make(start=True, **kw):
        d = sluicelib.Sluice.create(binaries, label=request.node.name[:40], **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    failed = _failed(request)
    for d in made:
        if failed:
            print(f"\n----- sluiced log ({d.root}) -----")
            print(d.log_text()[-30000:])
        d.stop()
        if not failed:
            d.cleanup()
