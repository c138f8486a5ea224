"""The dashboard notes the driver prints (against a real local HTTP server) and the free-port search."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from tinyab.study.ray_runtime import RayInfo, _describe_dashboard, free_port


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_local_dashboard_prints_its_url_and_token_file(http_server: str) -> None:
    info = RayInfo(address="local", local=True)
    _describe_dashboard(info, http_server, True, "127.0.0.1")
    assert info.dashboard_url == f"http://{http_server}"
    assert info.notes == [
        f"dashboard: http://{http_server} (login token in {info.notes[0].split(' in ')[-1]}"
    ]
    assert "auth_token" in info.notes[0] and not any("WARNING" in n for n in info.notes)


def test_binding_elsewhere_warns(http_server: str) -> None:
    info = RayInfo(address="local", local=True)
    _describe_dashboard(info, http_server, True, "0.0.0.0")
    assert info.notes[-1].startswith("WARNING: the dashboard listens on 0.0.0.0")


def test_a_dashboard_that_does_not_answer_is_reported_and_not_fatal() -> None:
    port = free_port("127.0.0.1", first=20000)
    assert port is not None
    info = RayInfo(address="local", local=True)
    _describe_dashboard(info, f"127.0.0.1:{port}", True, "127.0.0.1")
    assert info.dashboard_url is None
    assert info.notes[0].startswith("dashboard: not available, continuing without it: no answer at")
    _describe_dashboard(info, None, True, "127.0.0.1")
    assert (
        info.notes[1]
        == "dashboard: not available, continuing without it: Ray did not start it (see Ray's dashboard log)"
    )


def test_free_port_skips_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        found = free_port("127.0.0.1", first=taken, tries=50)
        assert found is not None and found > taken


def test_a_study_asking_for_more_than_the_cluster_has_is_refused() -> None:
    from tinyab.errors import UserError
    from tinyab.study import catalog
    from tinyab.study.plan import search_plan
    from tinyab.study.run import _check_fits

    def plan(profile: str):
        study = catalog.load("search", catalog.locate("search", "init_vs_wd"), profile)
        return search_plan(study, profile, "init_vs_wd.yaml")

    cpu_only = RayInfo(address="local", local=True, resources={"CPU": 16.0})
    with pytest.raises(UserError, match=r"resources.gpus: a trial asks for 0.5 GPU, the Ray cluster has 0"):
        _check_fits(plan("full"), cpu_only)  # GPU fractions per trial
    _check_fits(plan("smoke"), cpu_only)
