"""HTTP to the server with ``urllib``: the bearer token on every call,
TLS against the trusted CA, problem documents turned into typed errors,
and retries where a retry cannot do a thing twice. No proxy: the farm is
reached directly, as by the CLI."""

import json
import random
import ssl
import time
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import HTTPSHandler, ProxyHandler, Request, build_opener

from . import errors

USER_AGENT = "kiln-python/0.1"


class Transport(object):
    """One server, one token, one TLS context."""

    def __init__(self, url, token, context, timeout=30.0, retry_for=10.0):
        self.url = url
        self.token = token
        self.timeout = timeout
        self.retry_for = retry_for
        # Straight to the server, as the CLI goes: a proxy a DCC's
        # environment sets for the internet must not carry farm traffic.
        handlers = [ProxyHandler({})]
        if context is not None:
            handlers.append(HTTPSHandler(context=context))
        self._opener = build_opener(*handlers)

    def _request(self, method, path, query=None, body=None, headers=None):
        url = self.url + path
        if query:
            pairs = [(k, v) for k, v in _pairs(query) if v is not None]
            if pairs:
                url += "?" + urlencode(pairs)
        req = Request(url, data=body, method=method)
        req.add_header("User-Agent", USER_AGENT)
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        return req

    def open(self, method, path, query=None, body=None, headers=None, timeout=None):
        """Sends one request; returns the response (a file-like object,
        status 2xx) or raises a :class:`kiln.KilnError`."""
        req = self._request(method, path, query, body, headers)
        try:
            return self._opener.open(req, timeout=timeout or self.timeout)
        except HTTPError as e:
            raise _problem(e)
        except URLError as e:
            raise self._unreached(e.reason)
        except (OSError, HTTPException) as e:
            raise self._unreached(e)

    def _unreached(self, why):
        if isinstance(why, ssl.SSLCertVerificationError) or (
                isinstance(why, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(why)):
            return errors.Untrusted(
                "the server's certificate at %s is not trusted (%s): pass ca= (or KILN_CA) "
                "naming the server's ca.pem (its data directory has it), or run `kiln login %s`"
                % (self.url, getattr(why, "verify_message", why), self.url))
        return errors.Unreachable(
            "cannot reach the server at %s (%s): is `kiln server` (or `kiln up`) running? "
            "Point server= or KILN_SERVER at it (https:// for `kiln server`, http:// for "
            "`kiln up`)" % (self.url, why))

    def call(self, method, path, query=None, body=None, headers=None, retry=None):
        """Sends a request and reads its answer: JSON as Python values, any
        other content as text. GETs are retried on connection errors and
        503s for ``retry_for`` seconds; other methods only when ``retry``."""
        if retry is None:
            retry = method == "GET"
        deadline = time.time() + self.retry_for
        pause = 0.2
        while True:
            try:
                res = self.open(method, path, query, body, headers)
                try:
                    data = res.read()
                    ctype = res.headers.get("Content-Type", "")
                finally:
                    res.close()
                return _decode(data, ctype)
            except errors.Unavailable as e:
                err = e
            except (OSError, HTTPException) as e:
                # Cut while reading the answer.
                err = self._unreached(e)
            if not retry or time.time() + pause > deadline:
                raise err
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 5.0)

    def get(self, path, query=None):
        return self.call("GET", path, query)

    def post_json(self, path, payload=None, query=None):
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self.call("POST", path, query, body or b"", headers)


def _pairs(query):
    if isinstance(query, dict):
        query = list(query.items())
    out = []
    for k, v in query:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        elif v is not None:
            v = str(v)
        out.append((k, v))
    return out


def _decode(data, ctype):
    if "json" in ctype:
        return json.loads(data.decode("utf-8")) if data else None
    if ctype.startswith("image/"):
        return data
    return data.decode("utf-8", "replace")


def _problem(e):
    """A typed error from an HTTP error answer, with the server's detail."""
    try:
        raw = e.read()
    except Exception:  # the body may be cut
        raw = b""
    problem = None
    detail = None
    try:
        problem = json.loads(raw.decode("utf-8"))
        detail = problem.get("detail")
    except Exception:
        pass
    if not detail:
        detail = raw.decode("utf-8", "replace").strip() or "%d %s" % (e.code, e.reason)
    return errors.from_status(e.code, detail, problem)


def path_part(s):
    """``s`` as one path segment (a job name, a frame id)."""
    return quote(str(s), safe="")
