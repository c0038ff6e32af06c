"""The farm's things as Python objects, in the spirit of pycue: a job, its
layers and frames, hosts. Each wraps the JSON the server answered (the
shapes ``kiln ... --json`` prints, in ``.data``), reads its fields as
attributes (``job.status``, ``frame.state``) and acts on itself."""

import time

from . import errors
from .transport import path_part

# A job in one of these is over: nothing more will run unless retried.
OVER = ("FINISHED", "FAILED", "KILLED")


class _Thing(object):
    def __init__(self, client, data):
        self._client = client
        self.data = data

    def __getattr__(self, name):
        data = self.__dict__.get("data") or {}
        if name in data:
            return data[name]
        raise AttributeError("%s has no field %r (it has: %s)"
                             % (type(self).__name__, name, ", ".join(sorted(data))))

    def __getitem__(self, key):
        return self.data[key]

    def __eq__(self, other):
        return type(self) is type(other) and self.key() == other.key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self).__name__, self.key()))

    def key(self):
        return self.data.get("id")


class FarmJob(_Thing):
    """A job on the farm: ``client.job(name)``, ``client.jobs()``, or what
    ``client.submit`` returns. Fields are those of ``kiln jobs --json``
    (``id``, ``name``, ``show``, ``user``, ``status``, ``counts``, ...);
    a field the object does not hold yet is fetched."""

    def __getattr__(self, name):
        data = self.__dict__.get("data") or {}
        if name not in data and not self.__dict__.get("_loaded") and not name.startswith("_"):
            self.refresh()
        return _Thing.__getattr__(self, name)

    @property
    def _ref(self):
        return path_part(self.data.get("id", self.data.get("name")))

    def refresh(self):
        """Reads the job again; returns it."""
        detail = self._client._t.get("/api/v1/jobs/" + self._ref)
        self.data = dict(detail["job"])
        self.detail = detail
        self._loaded = True
        return self

    def layers(self):
        """The job's layers, with their frame counts (fresh)."""
        self.refresh()
        return [Layer(self._client, self, layer) for layer in self.detail["layers"]]

    def layer(self, name):
        for layer in self.layers():
            if layer.name == name:
                return layer
        raise errors.NotFound("job %s has no layer %r" % (self.name, name), 404)

    def frames(self, layer=None, state=None, page_size=None):
        """The job's frames (of ``layer``, in ``state``), walking the pages
        as the iteration goes."""
        query = {"layer": layer, "state": state, "page_size": page_size}
        for f in self._client._pages("/api/v1/jobs/%s/frames" % self._ref, query, "frames"):
            yield Frame(self._client, self, f)

    def _act(self, action, targets=None, state=None):
        body = {}
        if targets:
            body["targets"] = [targets] if isinstance(targets, str) else list(targets)
        if state:
            body["state"] = state
        return self._client._t.post_json(
            "/api/v1/jobs/%s/%s" % (self._ref, action), body or None)

    def pause(self, targets=None):
        """Pauses the job (or ``targets``: layers, ``"render/1-10"``).
        Returns ``{"frames": N, "message": the CLI's line}``."""
        return self._act("pause", targets)

    def resume(self, targets=None):
        return self._act("resume", targets)

    def kill(self, targets=None):
        return self._act("kill", targets)

    def retry(self, targets=None, state=None):
        """Retries the job's dead frames (or those of ``targets``, in
        ``state``)."""
        return self._act("retry", targets, state)

    def eat(self, targets=None, state=None):
        return self._act("eat", targets, state)

    def set_priority(self, priority):
        """Sets the job's priority (higher runs first within its show), as
        ``kiln job set JOB --priority N``."""
        return self._client._t.post_json("/api/v1/jobs/%s/priority" % self._ref,
                                         {"priority": int(priority)})

    def is_over(self):
        return self.status in OVER

    def wait(self, progress=None, timeout=None, poll=1.0):
        """Waits until the job is over (FINISHED, FAILED or KILLED) and
        returns it. ``progress(job)`` is called at every change of its
        counts; ``timeout`` (seconds) raises :class:`kiln.WaitTimeout`."""
        start = time.time()
        seen = None
        while True:
            self.refresh()
            now = (self.status, tuple(sorted(self.counts.items())))
            if progress is not None and now != seen:
                progress(self)
            seen = now
            if self.is_over():
                return self
            if timeout is not None and time.time() - start >= timeout:
                raise errors.WaitTimeout(
                    "job %s is still %s after %ss (%s)"
                    % (self.name, self.status, timeout, _counts(self.counts)))
            time.sleep(poll)

    def __repr__(self):
        return "<FarmJob %s %s %s>" % (self.data.get("id"), self.data.get("name"),
                                       self.data.get("status", "?"))


class Layer(_Thing):
    """A layer of a job: fields as in ``kiln job --json`` (``name``,
    ``command``, ``frames``, ``counts``, ``why``, ...)."""

    def __init__(self, client, job, data):
        _Thing.__init__(self, client, data)
        self.job = job

    def frames(self, state=None, page_size=None):
        """The layer's frames, in ``state`` (WAITING, DEPEND, RUNNING,
        SUCCEEDED, DEAD or EATEN) when given."""
        return self.job.frames(layer=self.name, state=state, page_size=page_size)

    def _target(self):
        return [self.name]

    def pause(self):
        return self.job.pause(self._target())

    def resume(self):
        return self.job.resume(self._target())

    def kill(self):
        return self.job.kill(self._target())

    def retry(self, state=None):
        return self.job.retry(self._target(), state)

    def eat(self, state=None):
        return self.job.eat(self._target(), state)

    def __repr__(self):
        return "<Layer %s/%s>" % (self.job.data.get("name"), self.data.get("name"))


class Frame(_Thing):
    """A frame: fields as in ``kiln frames --json`` (``id``, ``layer``,
    ``number``, ``state``, ``attempts``, ``host``, ``exit_status``, ...)."""

    def __init__(self, client, job, data):
        _Thing.__init__(self, client, data)
        self.job = job

    @property
    def target(self):
        """``layer/number``, as the CLI names the frame."""
        return "%s/%s" % (self.data["layer"], self.data["number"])

    def refresh(self):
        """Reads the frame again; returns it."""
        d = self._client._t.get("/api/v1/frames/%s" % self.data["id"])
        self.data = d["frame"]
        return self

    def attempts(self):
        """Every attempt of the frame, oldest first: dicts with ``attempt``
        (1 for the first), ``host``, ``started_at``, ``ended_at``,
        ``runtime_ms``, ``max_rss_kb``, ``cpu_ms``, ``outcome``,
        ``exit_status``, ``exit_signal`` and ``reason``."""
        return self._client._t.get("/api/v1/frames/%s/attempts" % self.data["id"])["attempts"]

    def thumbnail(self, output=0, attempt=None):
        """The preview of one of the frame's outputs (``output`` 0 is the
        first its layer declares) as JPEG bytes, of the latest attempt or of
        ``attempt``. ``frame.data["outputs"]`` says what each output was
        found to be and ``frame.data.get("flag")`` why the frame looks bad.
        Raises NotFound where there is no preview."""
        return self._client._t.get("/api/v1/frames/%s/outputs/%d/thumbnail"
                                   % (self.data["id"], output), {"attempt": attempt})

    def _log_slice(self, offset, attempt):
        return self._client._t.get("/api/v1/frames/%s/log" % self.data["id"],
                                   {"offset": offset, "attempt": attempt})

    def log(self, attempt=None):
        """The log of the frame's latest attempt (or of ``attempt``, 1 for
        the first) as far as it is written now, as text."""
        out, offset = [], 0
        while True:
            page = self._log_slice(offset, attempt)
            out.append(page["data"])
            if page["complete"] or page["next_offset"] == offset:
                return "".join(out)
            offset = page["next_offset"]

    def tail(self, attempt=None, poll=1.0):
        """The log as it is written: yields each new piece of text, and
        ends when the attempt has ended and all of its log was read."""
        offset = 0
        while True:
            page = self._log_slice(offset, attempt)
            if page["data"]:
                yield page["data"]
            if page["complete"]:
                return
            if page["next_offset"] == offset:
                time.sleep(poll)
            offset = page["next_offset"]
            if attempt is None and page.get("attempt"):
                # Follow the attempt being read, not the next one.
                attempt = page["attempt"]

    def retry(self):
        """Runs the frame again (whatever its state)."""
        return self.job._act("retry", [self.target], None)

    def kill(self):
        return self.job._act("kill", [self.target])

    def eat(self):
        return self.job._act("eat", [self.target])

    def __repr__(self):
        return "<Frame %s %s %s>" % (self.data.get("id"), self.target, self.data.get("state"))


class Host(_Thing):
    """A render host: fields as in ``kiln hosts --json`` (``name``,
    ``state``, ``lock``, ``cores``, ``cores_used``, ``tags``, ...)."""

    def key(self):
        return self.data.get("name")

    def _act(self, action):
        return self._client._t.post_json("/api/v1/hosts/%s/%s"
                                         % (path_part(self.data["name"]), action))

    def lock(self):
        """Lets the host finish its frames and take no more."""
        return self._act("lock")

    def unlock(self):
        return self._act("unlock")

    def __repr__(self):
        return "<Host %s %s>" % (self.data.get("name"), self.data.get("state"))


def _counts(c):
    return ", ".join("%s %s" % (v, k) for k, v in sorted(c.items()) if v)
