"""``kiln.Client``: one server, reached over its REST API (docs/rest.md)
with the CLI's configuration; lists walk the server's cursor pages lazily."""

import datetime
import json
import os
import uuid

from . import config, events
from .builder import Job
from .errors import NotFound
from .objects import FarmJob, Frame, Host
from .transport import Transport, path_part


class Client(object):
    """A Kiln server.

    With no arguments it finds the server, token and CA as the CLI does
    (``KILN_SERVER``, ``KILN_TOKEN``, ``KILN_CA``, then what ``kiln login``
    kept under ``~/.config/kiln/``); ``server=``, ``token=`` and ``ca=``
    override. ``timeout``: seconds one request may take; ``retry_for``:
    how long reads (and submissions, which carry an idempotency key) are
    retried while the server cannot be reached or answers 503.
    """

    def __init__(self, server=None, token=None, ca=None, timeout=30.0, retry_for=10.0):
        url, token, ca = config.resolve(server, token, ca)
        self.url = url
        self.ca = ca
        self._t = Transport(url, token, config.ssl_context(url, ca), timeout, retry_for)

    def __repr__(self):
        return "<kiln.Client %s>" % self.url

    # -- lists -------------------------------------------------------------

    def _pages(self, path, query, key):
        """The items under ``key`` of every page of ``path``, fetched as the
        iteration reaches them."""
        query = dict((k, v) for k, v in query.items() if v is not None)
        while True:
            page = self._t.get(path, query)
            for item in page.get(key) or []:
                yield item
            token = page.get("next_page_token")
            if not token:
                return
            query["page_token"] = token

    def jobs(self, show=None, user=None, state=None, name=None, all=False, page_size=None):
        """Jobs, oldest first: unfinished ones unless ``all`` or a ``state``
        (PENDING, RUNNING, PAUSED, FAILED, FINISHED, KILLED) that names
        finished ones. A generator: pages are fetched as it goes."""
        query = {"show": show, "user": user, "state": state, "name": name,
                 "all": True if all else None, "page_size": page_size}
        for j in self._pages("/api/v1/jobs", query, "jobs"):
            yield FarmJob(self, j)

    def job(self, name):
        """A job by name or id; :class:`kiln.NotFound` if there is none."""
        return FarmJob(self, {"name": name}).refresh()

    def hosts(self):
        """The farm's hosts, a list (fetched in pages of 1,000)."""
        return [Host(self, h) for h in self._pages("/api/v1/hosts", {"page_size": 1000}, "hosts")]

    def whoami(self):
        """The caller: user, grants, where its account comes from."""
        return self._t.get("/api/v1/whoami")

    def server_info(self):
        return self._t.get("/api/v1/server")

    # -- submit ------------------------------------------------------------

    def submit(self, spec, idempotency_key=None, params=None, user=None):
        """Submits a job and returns it (a :class:`kiln.FarmJob`).

        ``spec``: a :class:`kiln.Job`, a dict (the spec as ``kiln submit``
        takes it), or the path of a spec or an Open Job Description job
        template (YAML or JSON). Relative paths in a spec start from its
        file's directory; a Job or dict must give absolute ones. ``params``: a template's parameters (``{"Frame":
        "1-100"}``; ``kiln.show``, ``kiln.priority``, ... for Kiln's
        extras). ``idempotency_key``: a submission retried with the same
        key makes one job; one is made per call when not given, so the
        client's own retries never make two. ``user``: who the job runs as
        when the spec names no one (needs the impersonate right).
        """
        # Relative paths in a spec start from its file's directory; one built
        # here has none (a DCC's working directory means nothing to a
        # render host), so a relative `cwd` in it is refused (docs/spec.md).
        base_dir = None
        ctype = "application/json"
        if isinstance(spec, Job):
            body = json.dumps(spec.to_spec())
        elif isinstance(spec, dict):
            body = json.dumps(spec)
        elif isinstance(spec, (str, bytes)) or hasattr(spec, "__fspath__"):
            path = os.fspath(spec)
            if isinstance(path, bytes):
                path = path.decode()
            with open(path, "rb") as f:
                raw = f.read()
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError("%s: the spec is not UTF-8 text (byte %d); save it as UTF-8"
                                 % (path, e.start))
            base_dir = os.path.dirname(os.path.abspath(path))
            ctype = "application/yaml"
        else:
            raise TypeError("submit takes a kiln.Job, a dict or a path, not %s"
                            % type(spec).__name__)
        query = [("user", user), ("base_dir", base_dir)]
        for k, v in sorted((params or {}).items()):
            query.append(("param." + k, v))
        key = idempotency_key or uuid.uuid4().hex
        headers = {"Content-Type": ctype, "Idempotency-Key": key}
        s = self._t.call("POST", "/api/v1/jobs", query, body.encode("utf-8"), headers,
                         retry=True)
        return FarmJob(self, {"id": s["id"], "name": s["name"]})

    # -- events ------------------------------------------------------------

    def events(self, job=None, show=None, kinds=None, after=None, since=None, reconnect=True):
        """A generator over the farm's events (:class:`kiln.Event`), live:
        it blocks for the next one, and after a cut reconnects by itself
        and resumes where it stopped (``Last-Event-ID``), missing nothing.
        ``kinds``: a list such as ``["job.finished", "frame.failed"]``;
        ``after``: start after this event id (a resumed script's last);
        ``since``: without ``after``, start with the events of this time
        (a datetime or epoch milliseconds); neither: only what comes next."""
        if isinstance(job, FarmJob):
            job = job.data.get("id", job.data.get("name"))
        query = {"job": job, "show": show, "since": _millis(since),
                 "kinds": ",".join(kinds) if isinstance(kinds, (list, tuple)) else kinds}
        query = dict((k, v) for k, v in query.items() if v is not None)
        return events.stream(self._t, query, after=after, reconnect=reconnect)

    # -- history -----------------------------------------------------------

    def history(self, show=None, user=None, job=None, since=None, until=None,
                page_size=None):
        """Every ended attempt (host, start, end, runtime, max RSS, CPU,
        exit, why) as dicts, oldest first, walking the pages lazily.
        ``since``/``until``: datetimes, or milliseconds since the epoch."""
        query = self._history_query(show, user, job, since, until)
        query["page_size"] = page_size
        return self._pages("/api/v1/history", query, "rows")

    def history_csv(self, show=None, user=None, job=None, since=None, until=None):
        """The same as CSV text, as ``kiln history --format csv`` writes it:
        ``pandas.read_csv(io.StringIO(client.history_csv()))``."""
        query = self._history_query(show, user, job, since, until)
        query["format"] = "csv"
        return self._t.get("/api/v1/history", query)

    def _history_query(self, show, user, job, since, until):
        if isinstance(job, FarmJob):
            job = job.data.get("id", job.data.get("name"))
        return {"show": show, "user": user, "job": job,
                "since": _millis(since), "until": _millis(until)}

    # -- webhooks ----------------------------------------------------------

    def webhooks(self):
        """The webhooks the caller may manage (dicts: id, url, kinds, show,
        owner, delivered_seq, behind, and ``failing`` while the receiver
        fails)."""
        return self._t.get("/api/v1/webhooks")["webhooks"]

    def create_webhook(self, url, kinds=None, show=None, secret=None):
        """Makes a webhook that POSTs the events committed from now on to
        ``url``; ``kinds``: a list such as ``["job.finished"]`` (none: every
        kind); ``show``: only that show's events. Returns a dict with
        ``webhook`` and ``secret`` (shown this once: check deliveries with
        :func:`kiln.verify_webhook`)."""
        payload = {"url": url, "kinds": list(kinds or []), "show": show}
        if secret is not None:
            payload["secret"] = secret
        return self._t.post_json("/api/v1/webhooks", payload)

    def delete_webhook(self, id):
        """Stops a webhook and deletes it with its delivery log."""
        return self._t.call("DELETE", "/api/v1/webhooks/%s" % path_part(id))

    def deliveries(self, webhook=None, failed=False, limit=None):
        """Tries of deliveries, newest first: the event (``seq``, ``kind``),
        the try's number, ``outcome`` (delivered, retrying, rejected), the
        receiver's ``status``, ``error`` and ``millis``."""
        path = "/api/v1/webhooks/deliveries" if webhook is None else \
            "/api/v1/webhooks/%s/deliveries" % path_part(webhook)
        query = {"failed": True if failed else None, "limit": limit}
        query = dict((k, v) for k, v in query.items() if v is not None)
        return self._t.get(path, query)["deliveries"]

    # -- frames by id ------------------------------------------------------

    def frame(self, id_or_job, target=None):
        """A frame by its id (``frame.id``, as ``kiln frames`` lists), or
        by job and ``layer/number``: ``client.frame("shot010", "render/12")``."""
        if target is None:
            d = self._t.get("/api/v1/frames/%s" % path_part(id_or_job))
            return Frame(self, FarmJob(self, {"id": d["job_id"], "name": d["job"]}), d["frame"])
        job = id_or_job if isinstance(id_or_job, FarmJob) else self.job(id_or_job)
        layer, _, number = target.partition("/")
        for f in job.frames(layer=layer):
            if str(f.number) == number:
                return f
        raise NotFound("job %s has no frame %s" % (job.name, target), 404)


def _millis(t):
    if t is None or isinstance(t, str):
        return t
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            t = t.astimezone()
        return int(t.timestamp() * 1000)
    if isinstance(t, datetime.date):
        return _millis(datetime.datetime(t.year, t.month, t.day))
    return int(t)


