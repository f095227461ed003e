"""`flow board`: starts this home's flow server when none runs and prints the board's URL;
run again, it finds the same server; the URL serves the login page."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import FlowCLI

pytestmark = pytest.mark.e2e


def test_flow_board_starts_a_server_once_and_prints_its_url(tmp_path):
    flow = FlowCLI(tmp_path / "home")
    first = flow("board", "--host", "127.0.0.1", "--port", "0")
    try:
        assert first.code == 0, first.err
        info = first.data
        assert info["started"] is True and info["url"].endswith("/") and f"board: {info['url']}" in first.err
        again = flow.ok("board")
        assert again["started"] is False and again["url"] == info["url"] and again["pid"] == info["pid"]
        page = httpx.get(info["login"], timeout=30)
        assert page.status_code == 200 and "login-form" in page.text
        assert httpx.get(info["url"] + "board/api/jobs", timeout=30).status_code == 401
        token = (tmp_path / "home").joinpath(info["token_file"]).read_text().strip()
        assert token and token not in first.err and token not in str(info)
    finally:
        flow("server", "stop")
