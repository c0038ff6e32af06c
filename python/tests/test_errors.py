"""Errors are typed and carry the server's text; the client finds its
server, token and CA as the CLI does."""

import os
import shutil

import pytest

import kiln
from conftest import free_port


def test_no_token_is_unauthenticated_with_the_servers_text(farm):
    c = kiln.Client(server=farm.url, ca=farm.ca)
    with pytest.raises(kiln.Unauthenticated) as e:
        c.whoami()
    assert e.value.status == 401
    assert e.value.detail.startswith("not logged in: the call carried no token"), e.value.detail
    assert e.value.problem["type"] == "urn:kiln:problem:unauthenticated"
    with pytest.raises(kiln.Unauthenticated):
        farm.client(token="kiln_api_1_forged").whoami()


def test_an_artist_may_not_kill_anothers_job_and_nothing_changes(farm):
    bob = farm.client(token=farm.user("pybob", "artist@pybobs"))
    alice = farm.client(token=farm.user("pyalice", "artist@pyalices", "viewer"))
    job = bob.submit(kiln.Job("py-bobs", show="pybobs", paused=True)
                     .layer("a", command="true", frames="1-2"))
    theirs = alice.job(job.id)
    with pytest.raises(kiln.Forbidden) as e:
        theirs.kill()
    assert e.value.status == 403
    assert e.value.detail.startswith("pyalice ("), e.value.detail
    assert "may not kill job %d of pybob" % job.id in e.value.detail, e.value.detail
    assert isinstance(e.value, kiln.KilnError)
    assert bob.job(job.id).status == "PAUSED"
    # Its owner may.
    assert job.kill()["message"]
    assert bob.job(job.id).status == "KILLED"


def test_wrong_requests_name_the_field_and_missing_things_are_not_found(client):
    with pytest.raises(kiln.InvalidRequest) as e:
        list(client.jobs(state="DONE"))
    assert e.value.detail.startswith('state: "DONE" is not a job state'), e.value.detail
    with pytest.raises(kiln.NotFound) as e:
        client.job("py-no-such-job")
    assert e.value.status == 404 and "py-no-such-job" in e.value.detail
    with pytest.raises(kiln.InvalidRequest) as e:
        client.submit({"name": "bad", "layers": [{"name": "a", "command": "x",
                                                  "frames": "1-x"}]})
    assert e.value.detail.startswith("layers[0].frames:"), e.value.detail
    with pytest.raises(TypeError):
        kiln.Job("x").layer("a", command="true", frames="1", colour="red")


def test_connection_errors_say_what_to_check(farm):
    port = free_port()
    c = kiln.Client(server="http://127.0.0.1:%d" % port, token="t", retry_for=0.3)
    with pytest.raises(kiln.Unreachable) as e:
        c.whoami()
    assert "cannot reach the server at http://127.0.0.1:%d" % port in str(e.value)
    assert "KILN_SERVER" in str(e.value) and e.value.status is None
    assert isinstance(e.value, kiln.Unavailable)
    # A server whose CA is not trusted (here: the system's roots only).
    with pytest.raises(kiln.Untrusted) as e:
        kiln.Client(server=farm.url, token=farm.token, retry_for=0).whoami()
    assert "kiln login %s" % farm.url in str(e.value)
    with pytest.raises(kiln.ConfigurationError) as e:
        kiln.Client(server="http://farm.example:7676")
    assert "plaintext is only for loopback" in str(e.value)


def test_no_arguments_read_the_clis_configuration(farm, tmp_path, monkeypatch):
    home = tmp_path / "home"
    cfg = home / ".config" / "kiln"
    (cfg / "tokens").mkdir(parents=True)
    (cfg / "ca").mkdir()
    # What `kiln login https://localhost:PORT` leaves behind.
    (cfg / "tokens" / ("localhost_%d" % farm.port)).write_text(farm.token + "\n")
    shutil.copy(farm.ca, str(cfg / "ca" / ("localhost_%d.pem" % farm.port)))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("KILN_SERVER", farm.url)
    c = kiln.Client()
    assert c.url == farm.url and c.ca.endswith("localhost_%d.pem" % farm.port)
    assert c.whoami()["user"] == "admin"
    # The environment wins over the saved token.
    monkeypatch.setenv("KILN_TOKEN", "kiln_api_1_nope")
    with pytest.raises(kiln.Unauthenticated):
        kiln.Client().whoami()
    # And arguments over the environment.
    assert kiln.Client(token=farm.token).whoami()["user"] == "admin"
    # XDG_CONFIG_HOME moves the whole configuration, as for the CLI.
    monkeypatch.delenv("KILN_TOKEN")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(kiln.Untrusted):
        kiln.Client(retry_for=0).whoami()
    monkeypatch.setenv("KILN_CA", farm.ca)
    with pytest.raises(kiln.Unauthenticated):
        kiln.Client().whoami()
    # No server named: the CLI's default, the farm `kiln up` starts.
    monkeypatch.delenv("KILN_SERVER")
    assert kiln.Client().url == "http://127.0.0.1:7676"
    assert os.environ["HOME"] == str(home)


def test_a_proxy_in_the_environment_is_not_used(farm, monkeypatch):
    # A DCC's environment may name a proxy for the internet; the farm is
    # reached directly, as by the CLI.
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(k, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert farm.client(retry_for=0).whoami()["user"] == "admin"
