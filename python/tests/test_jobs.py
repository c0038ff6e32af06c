"""Jobs end to end through the client: a built job submitted and waited
for, a failing frame retried, cursor paging, idempotent submission."""

import os
import time
import uuid

import pytest

import kiln


def test_a_built_job_is_submitted_waited_for_and_its_frames_read(farm, client, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = client.submit(
        kiln.Job("py-built-%s" % uuid.uuid4().hex[:6], show="pyshow", priority=50)
        .layer("render", command=["sh", "-c", "echo rendered #FRAME# > %s/#FRAME#" % out],
               frames="1-4", cores=1, memory="64M")
        .layer("comp", command="echo comp #FRAME_START#-#FRAME_END#", frames="1-4", chunk=4,
               depends=["render"]))
    seen = []
    done = job.wait(progress=lambda j: seen.append((j.status, j.counts["succeeded"])),
                    timeout=60, poll=0.2)
    assert done is job
    assert job.status == "FINISHED", job.data
    assert job.counts["succeeded"] == 5
    # Progress was told of every change, the last being the end.
    assert seen[-1] == ("FINISHED", 5)
    assert len(seen) >= 2, seen
    # Each frame ran once, and wrote what it was told to.
    assert sorted(os.listdir(str(out))) == ["1", "2", "3", "4"]
    assert (out / "3").read_text() == "rendered 3\n"
    layers = job.layers()
    assert [layer.name for layer in layers] == ["render", "comp"]
    assert layers[0].counts["succeeded"] == 4 and layers[1].total == 1
    frames = list(layers[0].frames())
    assert [f.number for f in frames] == [1, 2, 3, 4]
    assert all(f.state == "SUCCEEDED" and f["attempts"] == 1 for f in frames)
    assert list(layers[0].frames(state="DEAD")) == []
    # The same job by name, and its spec's fields as given.
    again = client.job(job.name)
    assert again == job and again.show == "pyshow" and again.priority == 50
    job.set_priority(70)
    assert job.refresh().priority == 70


def test_a_failing_frame_is_retried_and_runs_again(farm, client, tmp_path):
    runs = tmp_path / "runs"
    # Fails the first time, succeeds the second; every run is counted.
    script = ("echo run >> {runs}.#FRAME#; "
              "if [ $(wc -l < {runs}.#FRAME#) -lt 2 ]; then echo first try; exit 3; fi; "
              "echo second try").format(runs=runs)
    job = client.submit(kiln.Job("py-retry-%s" % uuid.uuid4().hex[:6])
                        .layer("render", command=script, frames="1-2", retries=0))
    job.wait(timeout=60, poll=0.2)
    assert job.status == "FAILED", job.data
    dead = list(job.layer("render").frames(state="DEAD"))
    assert [f.number for f in dead] == [1, 2]
    answer = dead[0].retry()
    assert answer["frames"] == 1, answer
    job.wait(timeout=60, poll=0.2)
    # Frame 1 ran again and succeeded; frame 2 stayed dead and ran once.
    assert job.counts["succeeded"] == 1 and job.counts["dead"] == 1, job.data
    assert (tmp_path / "runs.1").read_text() == "run\nrun\n"
    assert (tmp_path / "runs.2").read_text() == "run\n"
    f1 = dead[0].refresh()
    assert f1.state == "SUCCEEDED" and f1["attempts"] == 2
    # The rest of the job: retried whole, it finishes.
    assert job.retry()["frames"] == 1
    assert job.wait(timeout=60, poll=0.2).status == "FINISHED"


def test_lists_walk_every_page_once_and_lazily(farm, client):
    show = "paging%s" % uuid.uuid4().hex[:6]
    made = [client.submit(kiln.Job("pg%d" % i, show=show, paused=True)
                          .layer("a", command="true", frames="1")) for i in range(7)]
    gets = []
    real_get = client._t.get

    def counting_get(path, query=None):
        gets.append(dict(query or {}))
        return real_get(path, query)

    client._t.get = counting_get
    it = client.jobs(show=show, page_size=3)
    first = next(it)
    assert len(gets) == 1, "the first page only, until more is asked for"
    rest = list(it)
    ids = [j.id for j in [first] + rest]
    assert ids == [j.id for j in made], "each job once, oldest first"
    assert len(gets) == 3 and "page_token" in gets[2], gets
    assert all(j.status == "PAUSED" for j in rest)
    # Filters apply before paging.
    assert list(client.jobs(show=show, state="RUNNING")) == []


def test_an_idempotency_key_makes_one_job(farm, client):
    key = uuid.uuid4().hex
    name = "py-idem-%s" % key[:6]
    spec = {"name": name, "paused": True,
            "layers": [{"name": "a", "command": "true", "frames": "1-3"}]}
    a = client.submit(spec, idempotency_key=key)
    b = client.submit(spec, idempotency_key=key)
    assert a.id == b.id
    assert [j.id for j in client.jobs(name=name)] == [a.id]
    # Without a key, each call is a job of its own.
    c = client.submit(spec)
    assert c.id != a.id


def test_a_spec_file_and_a_template_submit_from_their_paths(farm, client, tmp_path):
    spec = tmp_path / "shot.yaml"
    spec.write_text("name: py-file\nshow: pyshow\npaused: true\nlayers:\n"
                    "  - name: a\n    command: 'true'\n    frames: 1-5\n")
    job = client.submit(str(spec))
    assert job.status == "PAUSED" and job.show == "pyshow" and job.total == 5
    # A relative cwd starts from the spec file's directory ...
    spec.write_text("name: py-cwd\npaused: true\ncwd: out\nlayers:\n"
                    "  - name: a\n    command: pwd\n    frames: 1\n")
    assert client.submit(spec).layers()[0].name == "a"
    # ... and one built in Python has none to start from.
    with pytest.raises(kiln.InvalidRequest) as e:
        client.submit(kiln.Job("py-cwd", cwd="out", paused=True)
                      .layer("a", command="pwd", frames="1"))
    assert e.value.detail.startswith("cwd:"), e.value.detail
    tpl = tmp_path / "tpl.yaml"
    tpl.write_text(
        "specificationVersion: jobtemplate-2023-09\nname: py-template\n"
        "parameterDefinitions:\n  - name: Frames\n    type: STRING\n"
        "steps:\n  - name: render\n    parameterSpace:\n      taskParameterDefinitions:\n"
        "        - name: Frame\n          type: INT\n          range: \"{{Param.Frames}}\"\n"
        "    script:\n      actions:\n        onRun:\n          command: 'true'\n")
    t = client.submit(tpl, params={"Frames": "1-3", "kiln.show": "pyshow"})
    assert t.show == "pyshow"
    t.pause()
    assert t.total == 3 and [layer.name for layer in t.layers()] == ["render"]


def test_waiting_past_the_timeout_says_where_the_job_is(client):
    job = client.submit(kiln.Job("py-paused-%s" % uuid.uuid4().hex[:6], paused=True)
                        .layer("a", command="true", frames="1-2"))
    start = time.time()
    with pytest.raises(kiln.WaitTimeout) as e:
        job.wait(timeout=0.5, poll=0.1)
    assert 0.5 <= time.time() - start < 5
    assert "is still PAUSED after 0.5s (2 waiting)" in str(e.value), str(e.value)
    job.kill()
