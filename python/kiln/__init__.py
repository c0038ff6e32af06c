"""Kiln's Python client: the farm's REST API with the standard library
only (Python 3.7 or newer), so it runs inside Maya, Houdini, Nuke and
Blender.

    import kiln
    farm = kiln.Client()                      # as the `kiln` CLI is configured
    job = farm.submit(kiln.Job("shot010", show="demo")
                      .layer("render", command="render -f #FRAME#", frames="1-100"))
    job.wait(progress=lambda j: print(j.counts))

See docs/python.md.
"""

from .builder import Job
from .client import Client
from .errors import (ConfigurationError, Forbidden, InvalidRequest, KilnError, NotFound,
                     Unauthenticated, Unavailable, Unreachable, Untrusted, WaitTimeout)
from .events import Event
from .objects import FarmJob, Frame, Host, Layer
from .webhooks import verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Client", "Job", "FarmJob", "Layer", "Frame", "Host", "Event",
    "KilnError", "InvalidRequest", "Unauthenticated", "Forbidden", "NotFound",
    "Unavailable", "Unreachable", "Untrusted", "ConfigurationError", "WaitTimeout",
    "verify_webhook",
]
