"""A real farm for the client's tests: the `kiln` binary (``KILN_BIN``, or
``target/debug/kiln`` of this repository) as a TLS server with a CA of its
own and one worker, on a free port of 127.0.0.1, in a temporary directory.
Nothing is built here: CI runs these after ``cargo test``."""

import os
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))

import kiln  # noqa: E402


def kiln_bin():
    b = os.environ.get("KILN_BIN") or os.path.join(REPO, "target", "debug", "kiln")
    if not os.access(b, os.X_OK):
        pytest.fail("no kiln binary at %s: run `cargo build` first, or set KILN_BIN" % b)
    return b


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(what, cond, timeout=20.0):
    start = time.time()
    while True:
        v = cond()
        if v:
            return v
        if time.time() - start > timeout:
            raise AssertionError("%s: not within %ss" % (what, timeout))
        time.sleep(0.05)


class Farm(object):
    def __init__(self, root, plaintext=False):
        self.root = str(root)
        self.bin = kiln_bin()
        self.port = free_port()
        self.plaintext = plaintext
        self.url = ("http://127.0.0.1:%d" if plaintext else "https://localhost:%d") % self.port
        self.data = os.path.join(self.root, "data")
        self.ca = None if plaintext else os.path.join(self.data, "ca.pem")
        self.procs = []
        self.server = None

    def log(self, name):
        return open(os.path.join(self.root, name + ".log"), "ab")

    def start_server(self):
        env = dict(os.environ, KILN_LOG="info")
        self.server = subprocess.Popen(
            [self.bin, "server", "--listen", "127.0.0.1:%d" % self.port,
             "--down-after", "60s", "--data", self.data]
            + (["--plaintext"] if self.plaintext else []),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log("server"), env=env)
        token_file = os.path.join(self.data, "admin.token")
        self.token = wait_until(
            "the server's admin.token",
            lambda: os.path.isfile(token_file) and open(token_file).read().strip())
        wait_until("the server answers", self._answers)

    def _answers(self):
        try:
            self.client(retry_for=0).server_info()
            return True
        except kiln.KilnError:
            return False

    def term_server(self):
        """SIGTERM: the server stops as an operator stops it."""
        self.server.terminate()
        self.server.wait(20)

    def kill_server(self):
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()

    def cli(self, *args, **kw):
        """Runs the CLI as the farm's admin; returns its stdout."""
        env = dict(os.environ, KILN_SERVER=self.url, KILN_TOKEN=kw.get("token", self.token))
        if self.ca:
            env["KILN_CA"] = self.ca
        out = subprocess.run([self.bin] + list(args), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert out.returncode == 0, "kiln %s: %s%s" % (args, out.stdout, out.stderr)
        return out.stdout.decode().strip()

    def add_worker(self, name, cores):
        join = self.cli("token", "create", "--worker", "--name", "harness-" + name,
                        "--expires", "7d")
        assert join.startswith("kiln_join_"), join
        env = dict(os.environ, KILN_LOG="info")
        if self.ca:
            env["KILN_CA"] = self.ca
        self.procs.append(subprocess.Popen(
            [self.bin, "worker", "--server", self.url, "--name", name, "--join", join,
             "--allow-root", "--run-as-self", "--cores", str(cores), "--memory", "8G",
             "--work-dir", os.path.join(self.root, "work-" + name)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log("worker-" + name), env=env))

    def wait_hosts(self, n):
        wait_until("%d hosts up" % n, lambda: len(
            [h for h in self.client().hosts() if h.state == "UP"]) >= n)

    def user(self, name, *grants):
        """A user with ``grants`` (``role`` or ``role@show``); its token."""
        self.cli("user", "create", name)
        for g in grants:
            role, _, show = g.partition("@")
            self.cli("grant", role, name, *(["--show", show] if show else []))
        return self.cli("token", "create", "--user", name, "--name", "py")

    def client(self, token=None, **kw):
        return kiln.Client(server=self.url, token=token or self.token, ca=self.ca, **kw)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.time() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.kill_server()

    def logs(self):
        out = []
        for n in sorted(os.listdir(self.root)):
            if n.endswith(".log"):
                with open(os.path.join(self.root, n), "rb") as f:
                    out.append("==== %s\n%s" % (n, f.read().decode("utf-8", "replace")))
        return "\n".join(out)


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("farm")
    # The tests' own home: no token or CA of the person running them.
    home = root / "home"
    home.mkdir()
    saved = dict((k, os.environ.get(k)) for k in
                 ("HOME", "XDG_CONFIG_HOME", "KILN_SERVER", "KILN_TOKEN", "KILN_CA"))
    os.environ["HOME"] = str(home)
    for k in ("XDG_CONFIG_HOME", "KILN_SERVER", "KILN_TOKEN", "KILN_CA"):
        os.environ.pop(k, None)
    f = Farm(root)
    try:
        f.start_server()
        f.add_worker("w0", 4)
        f.wait_hosts(1)
        yield f
    except BaseException:
        sys.stderr.write(f.logs())
        raise
    finally:
        f.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def client(farm):
    return farm.client()
