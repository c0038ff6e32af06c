"""Webhooks from Python: a pipeline makes one, a stdlib ``http.server``
receives the signed deliveries and checks them with
``kiln.verify_webhook``; a forged or stale signature is refused; the
delivery log and the webhook list read back; bad input names the field."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

import kiln
from conftest import wait_until


class Receiver(object):
    def __init__(self, secret_box):
        got = self.got = []

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = kiln.verify_webhook(secret_box[0], self.headers, body)
                got.append((dict(self.headers), body, ok))
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Hook)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_pipeline_receives_signed_events(client):
    box = [None]
    rx = Receiver(box)
    try:
        show = "pyhook%s" % uuid.uuid4().hex[:6]
        # The show exists once a job is submitted into it.
        first = client.submit(kiln.Job("py-hook-0", show=show).layer("r", command="true", frames="1"))
        first.wait(timeout=60, poll=0.2)
        made = client.create_webhook("http://127.0.0.1:%d/kiln" % rx.port,
                                     kinds=["job.finished"], show=show)
        box[0] = made["secret"]
        hook = made["webhook"]
        assert hook["show"] == show and hook["kinds"] == ["job.finished"]
        assert "secret" not in hook
        job = client.submit(kiln.Job("py-hook", show=show).layer("r", command="true", frames="1-2"))
        job.wait(timeout=60, poll=0.2)
        wait_until("the delivery", lambda: rx.got, timeout=30)
        headers, body, ok = rx.got[0]
        assert ok, headers
        event = json.loads(body.decode())
        assert event["kind"] == "job.finished" and event["job"] == "py-hook"
        lower = dict((k.lower(), v) for k, v in headers.items())
        assert lower["kiln-event-id"] == str(event["seq"])
        assert lower["kiln-event"] == "job.finished"
        assert len(rx.got) == 1, "only job.finished of the show, and only once"

        sig = lower["kiln-signature"]
        assert not kiln.verify_webhook("another secret entirely", headers, body)
        assert not kiln.verify_webhook(box[0], headers, body + b" ")
        assert not kiln.verify_webhook(box[0], sig, body, now=time.time() + 3600)
        assert kiln.verify_webhook(box[0], sig, body)

        assert any(w["id"] == hook["id"] for w in client.webhooks())
        log = wait_until("the log", lambda: client.deliveries(webhook=hook["id"]), timeout=10)
        assert log[0]["outcome"] == "delivered" and log[0]["status"] == 204
        assert client.deliveries(webhook=hook["id"], failed=True) == []

        with pytest.raises(kiln.InvalidRequest) as e:
            client.create_webhook("http://127.0.0.1:1/", kinds=["job.done"])
        assert "job.done" in str(e.value)
        with pytest.raises(kiln.InvalidRequest) as e:
            client.create_webhook("gopher://x/")
        assert "url" in str(e.value)

        client.delete_webhook(hook["id"])
        assert all(w["id"] != hook["id"] for w in client.webhooks())
        with pytest.raises(kiln.NotFound):
            client.delete_webhook(hook["id"])
    finally:
        rx.close()


def test_a_receiver_that_refuses_an_event_gets_the_next_and_an_outage_is_retried(client):
    """Another 4xx refuses that event for good (logged `rejected`, not sent
    again); a 503 is tried again until taken; order is kept."""
    answers = [400, 503, 204, 204]
    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = answers.pop(0) if answers else 204
            got.append((json.loads(body.decode())["job"], status))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        show = "pyrej%s" % uuid.uuid4().hex[:6]
        client.submit(kiln.Job("py-rej-0", show=show).layer("r", command="true", frames="1")).wait(timeout=60, poll=0.2)
        made = client.create_webhook("http://127.0.0.1:%d/" % server.server_address[1],
                                     kinds=["job.submitted"], show=show)
        hook = made["webhook"]["id"]
        for n in (1, 2, 3):
            client.submit(kiln.Job("py-rej-%d" % n, show=show).layer("r", command="true", frames="1"))
        wait_until("three jobs delivered", lambda: len([s for _, s in got if s == 204]) >= 2, timeout=30)
        # py-rej-1 refused (400) and never sent again; py-rej-2 refused once
        # with 503, then taken; py-rej-3 after it.
        assert got[0] == ("py-rej-1", 400), got
        assert got[1:4] == [("py-rej-2", 503), ("py-rej-2", 204), ("py-rej-3", 204)], got
        log = wait_until("the log", lambda: (lambda d: d if len(d) >= 4 else None)(
            client.deliveries(webhook=hook)), timeout=10)
        outcomes = [(d["outcome"], d["status"]) for d in reversed(log)]
        assert outcomes == [("rejected", 400), ("retrying", 503), ("delivered", 204),
                            ("delivered", 204)], outcomes
        client.delete_webhook(hook)
    finally:
        server.shutdown()
        server.server_close()
