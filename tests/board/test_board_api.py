"""The board's HTTP side without a browser: the login exchange and its cookie, 401 with no
session on every API route and the event stream, the CSRF token on changes, the roles of
the CLI's operations, and the results of the parties this home ran only."""

from __future__ import annotations

import httpx
import pytest

from .conftest import TOKEN, BoardHome

pytestmark = pytest.mark.e2e


def login(board: BoardHome, token: str = TOKEN) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=board.base, timeout=30)
    res = client.post("/board/login", json={"token": token})
    assert res.status_code == 200, res.text
    return client, res.json()["data"]["csrf"]


def api_routes(board: BoardHome) -> list[str]:
    j = board.lr_job
    task = f"/board/api/jobs/{j}/tasks/guest/9999/hetero_lr_0"
    return ["/board/api/session", "/board/api/jobs", f"/board/api/jobs/{j}", f"{task}/parameters",
            f"{task}/metrics", f"{task}/model", f"{task}/data", f"/board/api/jobs/{j}/logs?role=guest&party_id=9999",
            "/board/api/events", f"/board/api/events?job_id={j}"]


def test_without_a_session_every_route_answers_401(board_home: BoardHome):
    with httpx.Client(base_url=board_home.base, timeout=30) as anon:
        for path in api_routes(board_home):
            assert anon.get(path).status_code == 401, path
        # a bearer token is the API's way in, not the board's
        assert anon.get("/board/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert anon.post(f"/board/api/jobs/{board_home.lr_job}/stop").status_code == 401
        page = anon.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert anon.get("/login").status_code == 200
        forged = anon.get("/board/api/jobs", headers={"Cookie": "fedweave_board=made-up"})
        assert forged.status_code == 401
        wrong = anon.post("/board/login", json={"token": "not-the-token"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


def test_login_gives_an_httponly_strict_cookie_and_no_token(board_home: BoardHome):
    client = httpx.Client(base_url=board_home.base, timeout=30)
    res = client.post("/board/login", json={"token": TOKEN})
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert TOKEN not in res.text and TOKEN.lower() not in cookie
    assert client.get("/board/api/session").json()["data"]["user"] == "admin"
    # a form post (what another site could send) does not log in
    form = httpx.post(f"{board_home.base}/board/login", data={"token": TOKEN})
    assert form.status_code in (403, 422) and "set-cookie" not in form.headers
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]


def test_jobs_api_lists_and_filters_like_job_list(board_home: BoardHome):
    client, _ = login(board_home)
    listed = board_home.flow.ok("job", "list")
    rows = client.get("/board/api/jobs").json()["data"]["jobs"]
    assert [r["job_id"] for r in rows] == [j["job_id"] for j in listed]
    lr = next(r for r in rows if r["job_id"] == board_home.lr_job)
    assert lr["parties"] == {"guest": ["9999"], "host": ["10000"], "arbiter": ["10000"]}
    assert lr["status"] == "success" and lr["progress"] == 100 and lr["duration_s"] > 0
    hosts = client.get("/board/api/jobs", params={"role": "host"}).json()["data"]["jobs"]
    assert [r["job_id"] for r in hosts] == [board_home.lr_job]
    by_id = client.get("/board/api/jobs", params={"q": board_home.reader_job[-6:]}).json()["data"]["jobs"]
    assert board_home.reader_job in [r["job_id"] for r in by_id] and board_home.lr_job not in [
        r["job_id"] for r in by_id if not r["job_id"].endswith(board_home.reader_job[-6:])]
    assert client.get("/board/api/jobs", params={"status": "failed"}).json()["data"]["jobs"] == []


def test_changes_need_the_csrf_token(board_home: BoardHome):
    client, csrf = login(board_home)
    path = f"/board/api/jobs/{board_home.lr_job}/rerun"
    refused = client.post(path, json={})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["retmsg"]
    assert client.post(path, json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    # with the token the operation itself answers: a successful job has nothing to rerun from
    answered = client.post(path, json={}, headers={"X-CSRF-Token": csrf})
    assert answered.status_code == 409 and "no failed component" in answered.json()["retmsg"]
    out = client.post("/board/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 200
    assert client.get("/board/api/session").status_code == 401


def test_a_viewer_reads_but_may_not_change_or_read_rows(board_home: BoardHome):
    token = board_home.flow.ok("user", "add", "vic", "--role", "viewer")["token"]
    client, csrf = login(board_home, token)
    j = board_home.lr_job
    assert client.get(f"/board/api/jobs/{j}").status_code == 200
    assert client.get(f"/board/api/jobs/{j}/tasks/guest/9999/evaluation_0/metrics").status_code == 200
    rows = client.get(f"/board/api/jobs/{j}/tasks/guest/9999/hetero_lr_0/data")
    assert rows.status_code == 403 and "needs operator" in rows.json()["retmsg"]
    stop = client.post(f"/board/api/jobs/{j}/stop", headers={"X-CSRF-Token": csrf})
    assert stop.status_code == 403 and "needs operator" in stop.json()["retmsg"]
    board_home.flow.ok("user", "remove", "vic")  # a removed user's session ends with it
    assert client.get(f"/board/api/jobs/{j}").status_code == 401


def test_results_of_a_party_this_home_did_not_run_are_refused(board_home: BoardHome):
    client, _ = login(board_home)
    page = client.get(f"/board/api/jobs/{board_home.lr_job}").json()["data"]
    assert {(p["role"], p["party_id"]) for p in page["own"]} == {("guest", "9999"), ("host", "10000"),
                                                                   ("arbiter", "10000")}
    for what in ("metrics", "model", "data"):
        res = client.get(f"/board/api/jobs/{board_home.lr_job}/tasks/host/4242/hetero_lr_0/{what}")
        assert res.status_code == 403 and "kept by party 4242" in res.json()["retmsg"]


def test_logs_and_events_are_server_sent_events(board_home: BoardHome):
    client, _ = login(board_home)
    j = board_home.lr_job
    with client.stream("GET", f"/board/api/jobs/{j}/logs", params={"role": "guest", "party_id": "9999",
                                                                   "component": "hetero_lr_0"}) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        text = "".join(res.iter_text())
    assert "event: line" in text and "hetero_lr_0" in text and text.rstrip().endswith("data: {}")
    with client.stream("GET", "/board/api/events", params={"job_id": j}) as res:
        text = "".join(res.iter_text())  # a finished job: its page once, then the end
    assert "event: detail" in text and 'event: end\ndata: {"status": "success"}' in text


def test_jobs_pages_sorts_and_partner(board_home: BoardHome):
    client, _ = login(board_home)
    listed = [j["job_id"] for j in board_home.flow.ok("job", "list", "-l", "1000")]
    seen, total = [], None
    while total is None or len(seen) < total:
        page = client.get("/board/api/jobs", params={"offset": len(seen), "limit": 1}).json()["data"]
        assert len(page["jobs"]) == 1
        seen.append(page["jobs"][0]["job_id"])
        total = page["total"]
    assert seen == listed and total == len(listed)
    rows = client.get("/board/api/jobs", params={"sort": "duration", "order": "asc"}).json()["data"]["jobs"]
    durations = [r["duration_s"] for r in rows if r["final"]]
    assert durations == sorted(durations) and len(durations) >= 2
    partner = [r["job_id"] for r in client.get("/board/api/jobs", params={"partner": "10000"}).json()["data"]["jobs"]]
    assert board_home.lr_job in partner and board_home.reader_job not in partner
    bad = client.get("/board/api/jobs", params={"partner": "../x"})
    assert bad.status_code in (400, 422) and "partner" in bad.json()["retmsg"]
    assert client.get("/board/api/jobs", params={"sort": "size"}).status_code == 422


def test_a_note_is_stored_as_the_jobs_description(board_home: BoardHome):
    client, csrf = login(board_home)
    job = board_home.reader_job
    before = board_home.flow.ok("job", "query", "-j", job)["description"]
    path = f"/board/api/jobs/{job}/note"
    assert client.post(path, json={"note": "x"}).status_code == 403  # no CSRF token
    token = board_home.flow.ok("user", "add", "vin", "--role", "viewer")["token"]
    viewer, viewer_csrf = login(board_home, token)
    refused = viewer.post(path, json={"note": "x"}, headers={"X-CSRF-Token": viewer_csrf})
    assert refused.status_code == 403 and "needs operator" in refused.json()["retmsg"]
    board_home.flow.ok("user", "remove", "vin")
    try:
        row = client.post(path, json={"note": "  checked by ana  "}, headers={"X-CSRF-Token": csrf}).json()["data"]
        assert row["description"] == "checked by ana"
        assert board_home.flow.ok("job", "query", "-j", job)["description"] == "checked by ana"
    finally:
        client.post(path, json={"note": before}, headers={"X-CSRF-Token": csrf})
    assert client.post("/board/api/jobs/no_such_job_2/note", json={"note": "x"},
                       headers={"X-CSRF-Token": csrf}).status_code == 404
