"""The event stream as a generator: in order, filtered, resumed after a
given id, and resumed by itself across a server killed and restarted,
with nothing missed and nothing twice."""

import io
import threading
import time
import uuid

import pytest

import kiln
from conftest import Farm


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A farm of this module's own: its server is killed and restarted."""
    f = Farm(tmp_path_factory.mktemp("events"))
    try:
        f.start_server()
        f.add_worker("e0", 2)
        f.wait_hosts(1)
        yield f
    finally:
        f.stop()


def until(gen, stop):
    """The events of ``gen`` up to the first for which ``stop`` holds."""
    out = []
    for ev in gen:
        out.append(ev)
        if stop(ev):
            break
    gen.close()
    return out


def finished(job):
    return lambda ev: ev.kind in ("job.finished", "job.failed") and ev.get("job_id") == job.id


def test_events_come_in_order_and_resume_after_an_id(own):
    c = own.client()
    show = "pyev%s" % uuid.uuid4().hex[:6]
    a = c.submit(kiln.Job("py-ev-a", show=show).layer("r", command="true", frames="1-2"))
    assert a.wait(timeout=60, poll=0.2).status == "FINISHED"
    evs = until(c.events(show=show, after=0), finished(a))
    # The show, new, was made by the submission (show.changed); then the job.
    assert {e.kind.split(".")[0] for e in evs} == {"show", "job", "frame"}
    evs = [e for e in evs if e.get("job_id") == a.id]
    kinds = [e.kind for e in evs]
    assert kinds[0] == "job.submitted" and kinds[-1] == "job.finished", kinds
    assert kinds.count("frame.started") == 2 and kinds.count("frame.succeeded") == 2, kinds
    assert all(e["show"] == show and e["job"] == "py-ev-a" for e in evs)
    ids = [e.id for e in evs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Filters: kinds, job.
    only = until(c.events(show=show, kinds=["job.finished"], after=0), finished(a))
    assert [e.kind for e in only] == ["job.finished"]
    # Resuming after the last seen id gives what came after, nothing before.
    b = c.submit(kiln.Job("py-ev-b", show=show).layer("r", command="true", frames="1"))
    b.wait(timeout=60, poll=0.2)
    rest = until(c.events(show=show, after=ids[-1]), finished(b))
    assert rest[0].kind == "job.submitted" and rest[0]["job"] == "py-ev-b", rest
    assert all(e.id > ids[-1] for e in rest)
    assert [e.id for e in until(c.events(job=b, after=0), finished(b))] == \
        [e.id for e in rest]


def test_the_generator_reconnects_by_itself_and_misses_nothing(own):
    c = own.client(retry_for=30)
    show = "pyre%s" % uuid.uuid4().hex[:6]
    job = c.submit(kiln.Job("py-ev-c", show=show, paused=True)
                   .layer("r", command="true", frames="1-3"))
    got = []
    gen = c.events(show=show, after=0)

    def read():
        for ev in gen:
            got.append(ev)
            if finished(job)(ev):
                return

    t = threading.Thread(target=read)
    t.daemon = True
    t.start()
    start = time.time()
    while "job.submitted" not in [e.kind for e in got] and time.time() - start < 20:
        time.sleep(0.05)
    assert "job.submitted" in [e.kind for e in got], got
    # The server stops under the stream (its last message, of kind error,
    # says so), is killed and comes back; the job then runs.
    own.term_server()
    own.start_server()
    c.job(job.id).resume()
    t.join(60)
    assert not t.is_alive(), "the stream did not come back: %r" % got
    ids = [e.id for e in got]
    assert len(set(ids)) == len(ids), "nothing twice"
    again = until(c.events(show=show, after=0), finished(job))
    assert [e.id for e in again] == ids, "nothing missed"
    assert [e.kind for e in got].count("frame.succeeded") == 3
    assert "error" not in [e.kind for e in got]


def test_the_stream_format_is_read_as_sse_says():
    from kiln.events import parse
    raw = (b": keep-alive\n\n"
           b"id: 7\nevent: job.finished\ndata: {\"job_id\": 3,\n"
           b"data:  \"job\": \"x\"}\n\n"
           b"id: 8\r\nevent: frame.failed\r\ndata:{\"frame\": \"12\"}\r\n\r\n"
           b"data: not json\n\n")
    evs = list(parse(io.BytesIO(raw)))
    assert [(e.id, e.kind) for e in evs] == [(7, "job.finished"), (8, "frame.failed"),
                                            (8, "message")]
    assert evs[0].data == {"job_id": 3, "job": "x"} and evs[0]["job"] == "x"
    assert evs[1]["frame"] == "12" and evs[2].data == "not json"
    # The server's first message is only an id: where the stream starts.
    start = list(parse(io.BytesIO(b"id: 41\n: following\n\nid: 42\nevent: job.finished\ndata: {}\n\n")))
    assert [(e.id, e.kind) for e in start] == [(41, None), (42, "job.finished")]
