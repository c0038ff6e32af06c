"""The farm's events as a Python generator over the server's Server-Sent
Events stream (``GET /api/v1/events``), reconnecting by itself and
resuming with ``Last-Event-ID`` so that nothing is missed."""

import json
import random
import time
from http.client import HTTPException

from . import errors


class Event(object):
    """One event: ``id`` (its sequence number), ``kind``
    (``job.finished``, ``frame.failed``, ...) and ``data`` (its JSON);
    ``event["job"]`` reads ``data``."""

    __slots__ = ("id", "kind", "data")

    def __init__(self, id, kind, data):
        self.id = id
        self.kind = kind
        self.data = data

    def __getitem__(self, key):
        return self.data[key]

    def get(self, key, default=None):
        return self.data.get(key, default) if isinstance(self.data, dict) else default

    def __repr__(self):
        return "<Event %s %s %r>" % (self.id, self.kind, self.data)


def parse(lines):
    """Events from an iterable of SSE lines (bytes or text, with or without
    line ends): ``id:``, ``event:``, ``data:`` fields, a blank line ending
    each event, ``:`` comments (keep-alives) skipped. A message that is
    only an ``id`` (the server's first: where the stream starts) comes as
    an Event of kind ``None``."""
    eid, kind, data, has_id = None, None, [], False
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if line == "":
            if not data and not kind and has_id:
                # Only an id: where the stream starts (no event).
                yield Event(_seq(eid), None, None)
            elif data or kind:
                text = "\n".join(data)
                try:
                    value = json.loads(text) if text else None
                except ValueError:
                    value = text
                yield Event(_seq(eid), kind or "message", value)
            kind, data, has_id = None, [], False
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "id":
            eid, has_id = value, True
        elif field == "event":
            kind = value
        elif field == "data":
            data.append(value)


def _seq(eid):
    try:
        return int(eid)
    except (TypeError, ValueError):
        return eid


def stream(transport, query, after=None, reconnect=True, read_timeout=90.0):
    """Yields events forever (until the caller stops), reconnecting with
    the last seen id after a cut. ``after``: resume after this sequence
    number (the first connection sends it as ``Last-Event-ID``)."""
    last = after
    pause = 0.2
    while True:
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        try:
            res = transport.open("GET", "/api/v1/events", query, None, headers,
                                 timeout=read_timeout)
        except errors.Unavailable:
            if not reconnect:
                raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 5.0)
            continue
        try:
            for ev in parse(_lines(res)):
                if ev.kind == "error":
                    # The server's last word before it ends the stream
                    # (it is stopping, or cannot read): a cut like any.
                    if not reconnect:
                        raise errors.Unavailable(str(ev.data), None)
                    break
                pause = 0.2
                if ev.id is not None:
                    last = ev.id
                if ev.kind is None:
                    continue  # the stream's start, not an event
                yield ev
        except (OSError, HTTPException) as e:
            if not reconnect:
                raise transport._unreached(e)
        finally:
            res.close()
        if not reconnect:
            return
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 5.0)


def _lines(res):
    while True:
        line = res.readline()
        if not line:
            return
        yield line
