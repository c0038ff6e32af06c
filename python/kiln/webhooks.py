"""Webhooks: the farm's events POSTed to a URL, signed with HMAC-SHA256.

A receiver checks each delivery with :func:`verify_webhook` before it
trusts it, and skips an event whose ``Kiln-Event-Id`` it has handled
already: delivery is at least once, so an event can come twice.

    from http.server import BaseHTTPRequestHandler
    import kiln

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not kiln.verify_webhook(SECRET, self.headers, body):
                self.send_response(401); self.end_headers(); return
            event = json.loads(body)        # as client.events() yields it
            ...
            self.send_response(204); self.end_headers()
"""

import hashlib
import hmac
import time


def sign(secret, timestamp, body):
    """The ``Kiln-Signature`` header value for ``body`` sent at
    ``timestamp`` (Unix seconds): ``t=TIMESTAMP,v1=HEX``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    msg = str(int(timestamp)).encode("ascii") + b"." + body
    mac = hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (int(timestamp), mac)


def verify_webhook(secret, headers, body, tolerance=300, now=None):
    """Whether a delivery is Kiln's: its ``Kiln-Signature`` matches ``body``
    under ``secret`` and was made within ``tolerance`` seconds of ``now``
    (so a captured delivery cannot be replayed later).

    ``headers``: the request's headers (a dict, or ``http.server``'s
    message), or the ``Kiln-Signature`` value itself. ``body``: the raw
    bytes, before any JSON decoding."""
    if isinstance(headers, str):
        header = headers
    else:
        header = None
        for k in headers.keys():
            if k.lower() == "kiln-signature":
                header = headers[k]
                break
    if not header:
        return False
    t = None
    given = []
    for part in header.split(","):
        k, _, v = part.strip().partition("=")
        if k == "t":
            try:
                t = int(v)
            except ValueError:
                return False
        elif k == "v1":
            given.append(v)
    if t is None or not given:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    want = sign(secret, t, body).split("v1=", 1)[1].encode("ascii")
    # Bytes on both sides: a hostile non-ASCII value is a mismatch, not a
    # TypeError in the receiver's handler.
    return any(hmac.compare_digest(want, g.encode("utf-8", "replace")) for g in given)
