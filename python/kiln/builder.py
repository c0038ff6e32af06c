"""A job spec built in Python: ``Job("x", show="demo").layer("render",
command=[...], frames="1-100")`` makes the same spec ``kiln submit``
takes (docs/spec.md), checked by the server when submitted."""

import json

# The spec's job fields (docs/spec.md); anything else is refused here, as
# the server would refuse it, but before a round trip.
JOB_FIELDS = ("show", "shot", "facility", "user", "priority", "max_cores", "env",
              "paused", "cwd", "depends")
LAYER_FIELDS = ("chunk", "service", "cores", "memory", "gpus", "gpu_memory", "scratch",
                "tags", "limits", "env", "retries", "timeout", "depends", "cwd",
                "outputs", "bad_outputs")


class Job(object):
    """A job to submit. Keyword arguments are the spec's job fields
    (``show``, ``shot``, ``priority``, ``max_cores``, ``env``, ``paused``,
    ``cwd``, ``depends``, ...)."""

    def __init__(self, name, **fields):
        _check("Job", fields, JOB_FIELDS)
        self.name = name
        self.fields = fields
        self.layers = []

    def layer(self, name, command, frames, **fields):
        """Adds a layer and returns the job, so calls chain.

        ``command`` is a string (run with ``/bin/sh -c``) or a list (run
        directly); ``frames`` a frame set (``"1-100"``, ``"1-100x5"``,
        ``10``); the keyword arguments are the spec's layer fields
        (``chunk``, ``cores``, ``memory``, ``tags``, ``retries``,
        ``timeout``, ``depends``, ``outputs``, ``bad_outputs``, ...). A
        dependency on another layer is
        ``depends=["render"]`` or ``depends=[{"layer": "render",
        "per_frame": True}]``.
        """
        _check("layer %r" % name, fields, LAYER_FIELDS)
        if not isinstance(command, str):
            command = [str(c) for c in command]
        spec = {"name": name, "command": command, "frames": frames}
        spec.update((k, v) for k, v in fields.items() if v is not None)
        self.layers.append(spec)
        return self

    def to_spec(self):
        """The spec as a dict, ready for JSON."""
        spec = {"name": self.name}
        spec.update((k, v) for k, v in self.fields.items() if v is not None)
        spec["layers"] = [dict(layer) for layer in self.layers]
        return spec

    def to_json(self):
        return json.dumps(self.to_spec(), indent=2, sort_keys=False)

    def __repr__(self):
        return "Job(%r, %d layers)" % (self.name, len(self.layers))


def _check(what, fields, known):
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise TypeError("%s: unknown field %s; the spec's fields are %s"
                        % (what, ", ".join(unknown), ", ".join(known)))
