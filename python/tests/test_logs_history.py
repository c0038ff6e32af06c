"""A frame's log and attempts, its outputs' previews, history rows and
CSV for pandas, hosts."""

import csv
import io
import os
import struct
import uuid
import zlib

import kiln
from pytest import raises


def test_a_retried_frames_attempts_and_logs(farm, client):
    marker = "/tmp/py-attempts-%s" % uuid.uuid4().hex[:8]
    # The second attempt's log is longer than one slice (1 MiB).
    script = ("if [ -e {m} ]; then echo second try; seq 1 60000 | sed 's/.*/line & of a long "
              "log/'; else touch {m}; echo first try; exit 3; fi").format(m=marker)
    job = client.submit(kiln.Job("py-logs-%s" % uuid.uuid4().hex[:6])
                        .layer("render", command=script, frames="7", retries=0))
    assert job.wait(timeout=60, poll=0.2).status == "FAILED"
    (frame,) = list(job.frames())
    first = frame.log()
    assert "\nfirst try\n" in first and "\nsecond try" not in first, first
    frame.retry()
    assert job.wait(timeout=60, poll=0.2).status == "FINISHED"
    attempts = frame.attempts()
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["exit_status"] == 3 and attempts[0]["host"] == "w0"
    assert attempts[1]["exit_status"] == 0 and attempts[1]["ended_at"] >= \
        attempts[1]["started_at"]
    # The latest attempt's log, read whole over several slices.
    text = frame.log()
    assert len(text) > 1 << 20
    assert "\nsecond try\nline 1 of a long log\n" in text
    lines = [x for x in text.splitlines() if x.endswith(" of a long log")]
    assert lines == ["line %d of a long log" % i for i in range(1, 60001)]
    assert frame.log(attempt=1) == first
    # The same frame by id, and by job and layer/number.
    assert client.frame(frame.id).job.id == job.id
    assert client.frame(job.name, "render/7").id == frame.id
    with raises(kiln.NotFound):
        client.frame(job.name, "render/8")
    # Tailing an ended attempt yields its log and stops.
    assert "".join(frame.tail(poll=0.1)) == text


def _png(path, grey):
    """A 32x18 grey PNG, written with the standard library alone."""
    w, h = 32, 18
    raw = b"".join(b"\0" + bytes([grey]) * (3 * w) for _ in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    os.chmod(path, 0o644)


def test_outputs_previews_and_a_black_frame_flagged(farm, client, tmp_path):
    for n, grey in ((1, 120), (2, 0)):
        _png(str(tmp_path / ("src.%d.png" % n)), grey)
    os.chmod(str(tmp_path), 0o755)
    job = client.submit(kiln.Job("py-outputs-%s" % uuid.uuid4().hex[:6])
                        .layer("beauty", command="cp %s/src.#FRAME#.png out.#FRAME#.png" % tmp_path,
                               frames="1-2", outputs=["out.#FRAME#.png"]))
    assert job.wait(timeout=60, poll=0.2).status == "FINISHED"
    ok, black = sorted(job.frames(), key=lambda f: f.data["number"])
    assert ok.data["outputs"][0]["state"] == "ok" and "flag" not in ok.data, ok.data
    assert black.data["flag"] == "out.2.png is all black", black.data
    jpeg = ok.thumbnail()
    assert isinstance(jpeg, bytes) and jpeg[:2] == b"\xff\xd8", jpeg[:10]
    assert black.thumbnail(attempt=1)[:2] == b"\xff\xd8"
    with raises(kiln.NotFound) as e:
        ok.thumbnail(output=3)
    assert "no preview of output 3" in str(e.value)


def test_history_rows_and_csv_for_pandas(farm, client):
    show = "pyhist%s" % uuid.uuid4().hex[:6]
    job = client.submit(kiln.Job("py-hist", show=show)
                        .layer("a", command="echo hi", frames="1-5"))
    assert job.wait(timeout=60, poll=0.2).status == "FINISHED"
    rows = list(client.history(show=show, page_size=2))
    assert sorted(r["frame"] for r in rows) == [1, 2, 3, 4, 5]
    assert all(r["job_id"] == job.id and r["outcome"] == "SUCCEEDED" and r["host"] == "w0"
               for r in rows)
    assert len(set(r["attempt_id"] for r in rows)) == 5, "each row once across pages"
    assert list(client.history(job=job)) == rows
    table = list(csv.DictReader(io.StringIO(client.history_csv(show=show))))
    assert [int(r["attempt_id"]) for r in table] == [r["attempt_id"] for r in rows]
    assert table[0]["job"] == "py-hist" and table[0]["outcome"] == "SUCCEEDED"
    # Times: milliseconds, or datetimes.
    import datetime
    later = datetime.datetime.now() + datetime.timedelta(hours=1)
    assert list(client.history(show=show, since=later)) == []


def test_hosts_are_listed_and_locked(farm, client):
    (w0,) = [h for h in client.hosts() if h.name == "w0"]
    assert w0.state == "UP" and w0.cores == 400
    try:
        assert w0.lock()["message"]
        (again,) = [h for h in client.hosts() if h.name == "w0"]
        assert again["lock"] != "OPEN", again.data
    finally:
        w0.unlock()
    (again,) = [h for h in client.hosts() if h.name == "w0"]
    assert again["lock"] == "OPEN", again.data
