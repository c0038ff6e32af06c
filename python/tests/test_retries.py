"""Retries that cannot do a thing twice: reads wait for a server that is
not up yet; a submission whose answer was lost is sent again with the
same idempotency key and makes one job. A relay on a real socket between
the client and a real (plaintext, loopback) server plays the network."""

import socket
import threading
import time
import uuid

import pytest

import kiln
from conftest import Farm


class Relay(object):
    """Forwards 127.0.0.1:port to the server, starting after ``delay``
    seconds. With ``cut_answers`` N, the first N connections deliver the
    request but lose the server's answer: the client sees the connection
    closed after its request was carried out."""

    def __init__(self, target_port, delay=0.0, cut_answers=0):
        self.target = target_port
        self.cut = cut_answers
        self.connections = 0
        self.lock = threading.Lock()
        # Bound now, listening after the delay: until then connections are
        # refused, as by a server not up yet.
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if delay == 0:
            self.sock.listen(16)
        t = threading.Thread(target=self._serve, args=(delay,))
        t.daemon = True
        t.start()

    def _serve(self, delay):
        s = self.sock
        if delay:
            time.sleep(delay)
            try:
                s.listen(16)
            except OSError:  # closed before it was up
                return
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cut = self.connections <= self.cut
            u = socket.create_connection(("127.0.0.1", self.target))
            for a, b, lose in ((c, u, False), (u, c, cut)):
                t = threading.Thread(target=self._pump, args=(a, b, lose))
                t.daemon = True
                t.start()

    @staticmethod
    def _pump(a, b, lose):
        try:
            while True:
                data = a.recv(65536)
                if not data or lose:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("plain"), plaintext=True)
    try:
        f.start_server()
        yield f
    finally:
        f.stop()


def test_reads_are_retried_until_the_server_answers(plain):
    relay = Relay(plain.port, delay=1.0)
    try:
        c = kiln.Client(server="http://127.0.0.1:%d" % relay.port, token=plain.token,
                        retry_for=15)
        start = time.time()
        assert c.whoami()["user"] == "admin"
        assert time.time() - start >= 0.9
    finally:
        relay.close()
    # With no time to retry, the same call fails at once.
    relay = Relay(plain.port, delay=1.0)
    try:
        c = kiln.Client(server="http://127.0.0.1:%d" % relay.port, token=plain.token,
                        retry_for=0)
        with pytest.raises(kiln.Unreachable):
            c.whoami()
    finally:
        relay.close()


def test_a_submission_whose_answer_is_lost_is_retried_and_makes_one_job(plain):
    relay = Relay(plain.port, cut_answers=1)
    try:
        c = kiln.Client(server="http://127.0.0.1:%d" % relay.port, token=plain.token,
                        retry_for=15)
        name = "py-lost-%s" % uuid.uuid4().hex[:6]
        job = c.submit(kiln.Job(name, paused=True).layer("a", command="true", frames="1"))
        assert relay.connections >= 2, "the first answer was lost, so it was sent again"
    finally:
        relay.close()
    jobs = list(plain.client().jobs(name=name))
    assert [j.id for j in jobs] == [job.id], "one job, the one the client was told of"


def test_actions_are_not_retried(plain):
    job = plain.client().submit(kiln.Job("py-once-%s" % uuid.uuid4().hex[:6], paused=True)
                                .layer("a", command="true", frames="1"))
    relay = Relay(plain.port, cut_answers=1)
    try:
        c = kiln.Client(server="http://127.0.0.1:%d" % relay.port, token=plain.token,
                        retry_for=15)
        with pytest.raises(kiln.Unreachable):
            kiln.FarmJob(c, {"id": job.id}).kill()
        assert relay.connections == 1
    finally:
        relay.close()
    # It was carried out: the caller, told nothing, checks before acting again.
    assert plain.client().job(job.id).status == "KILLED"
