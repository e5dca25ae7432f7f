"""Who may call what: ownership (another user's objects are 404 for every method), anonymous refusal,
token and session authentication, the per-user throttle, and `manage.py drf_create_token`."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from portfolios.models import Holding, Portfolio, RebalanceRun
from tests.test_api_fixtures import _fresh_throttle_history, done_run, portfolio_with_holdings, token_client  # noqa: F401

pytestmark = pytest.mark.django_db


def _calls(portfolio_id: int, run_id: int):
    """Every API endpoint and method that names an object, with a request body that would be valid."""
    csv_file = SimpleUploadedFile("positions.csv", b"ticker,shares\nMSFT,5\n", content_type="text/csv")
    p = f"/api/portfolios/{portfolio_id}"
    return [
        ("get", f"{p}/", None, None),
        ("patch", f"{p}/", {"name": "Stolen"}, "json"),
        ("delete", f"{p}/", None, None),
        ("post", f"{p}/import/", {"file": csv_file}, "multipart"),
        ("post", f"{p}/rebalance/", {"cash": 1000}, "json"),
        ("get", f"{p}/trades.csv", None, None),
        ("get", f"/api/runs/{run_id}/", None, None),
    ]


OBJECT_CALLS = [f"{method.upper()} {path}" for method, path, _, _ in _calls(1, 1)]


def _call(client, method, path, data, fmt):
    kwargs = {"format": fmt} if fmt else {}
    return getattr(client, method)(path, data, **kwargs) if data is not None else getattr(client, method)(path)


@pytest.mark.parametrize("index", range(len(OBJECT_CALLS)), ids=OBJECT_CALLS)
def test_bob_gets_404_on_alices_objects_and_changes_nothing(alice, bob, index):
    portfolio = portfolio_with_holdings(alice)
    run = done_run(portfolio)
    method, path, data, fmt = _calls(portfolio.pk, run.pk)[index]
    response = _call(token_client(bob), method, path, data, fmt)
    assert response.status_code == 404, (method, path, response.status_code, response.content)
    assert "Stolen" not in response.content.decode()
    portfolio.refresh_from_db()
    assert portfolio.name == "Main"
    assert Holding.objects.filter(account__portfolio=portfolio).count() == 3
    assert list(RebalanceRun.objects.values_list("pk", flat=True)) == [run.pk]


@pytest.mark.parametrize("index", range(len(OBJECT_CALLS)), ids=OBJECT_CALLS)
def test_alice_reaches_the_same_calls_on_her_own_objects(alice, index):
    """The control for the matrix above: the same requests by the owner are not 404."""
    portfolio = portfolio_with_holdings(alice)
    run = done_run(portfolio)
    method, path, data, fmt = _calls(portfolio.pk, run.pk)[index]
    response = _call(token_client(alice), method, path, data, fmt)
    assert response.status_code in (200, 202, 204), (method, path, response.status_code, response.content)


def test_bobs_list_does_not_show_alices_portfolios(alice, bob):
    portfolio_with_holdings(alice)
    assert token_client(bob).get("/api/portfolios/").json() == {"count": 0, "next": None, "previous": None,
                                                                "results": []}


ANONYMOUS_CALLS = [
    ("get", "/api/portfolios/"), ("post", "/api/portfolios/"),
    ("get", "/api/portfolios/{p}/"), ("patch", "/api/portfolios/{p}/"), ("delete", "/api/portfolios/{p}/"),
    ("post", "/api/portfolios/{p}/import/"), ("post", "/api/portfolios/{p}/rebalance/"),
    ("get", "/api/portfolios/{p}/trades.csv"), ("get", "/api/runs/{r}/"),
    ("get", "/api/schema/"), ("get", "/api/docs/"),
]


@pytest.mark.parametrize("method,path", ANONYMOUS_CALLS, ids=[f"{m.upper()} {p}" for m, p in ANONYMOUS_CALLS])
@pytest.mark.parametrize("credentials", [None, "Token 0000000000000000000000000000000000000000", "Bearer x"],
                         ids=["none", "unknown-token", "wrong-scheme"])
def test_anonymous_and_bad_tokens_are_refused(alice, method, path, credentials):
    portfolio = portfolio_with_holdings(alice)
    run = done_run(portfolio)
    client = APIClient()
    if credentials:
        client.credentials(HTTP_AUTHORIZATION=credentials)
    response = getattr(client, method)(path.format(p=portfolio.pk, r=run.pk))
    assert response.status_code in (401, 403), response.status_code
    assert Portfolio.objects.get(pk=portfolio.pk).name == "Main"
    assert RebalanceRun.objects.count() == 1


def test_anonymous_gets_401_with_the_token_scheme(client):
    response = client.get("/api/portfolios/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_token_authenticates_without_a_session_or_csrf(alice):
    client = APIClient(enforce_csrf_checks=True)
    key = Token.objects.create(user=alice).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.post("/api/portfolios/", {"name": "By token"}, format="json")
    assert response.status_code == 201
    assert Portfolio.objects.get(pk=response.json()["id"]).owner == alice


def test_a_revoked_token_stops_working(alice):
    client = token_client(alice)
    assert client.get("/api/portfolios/").status_code == 200
    Token.objects.filter(user=alice).delete()
    assert client.get("/api/portfolios/").status_code == 401


def test_a_browser_session_works_but_needs_the_csrf_token_to_write(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/portfolios/").status_code == 200
    refused = client.post("/api/portfolios/", {"name": "No CSRF"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Portfolio.objects.exists()


def test_an_inactive_users_token_is_refused(alice):
    client = token_client(alice)
    alice.is_active = False
    alice.save()
    assert client.get("/api/portfolios/").status_code == 401


def test_drf_create_token_issues_a_working_token(alice):
    out = io.StringIO()
    call_command("drf_create_token", "alice", stdout=out)
    key = Token.objects.get(user=alice).key
    assert key in out.getvalue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/portfolios/").status_code == 200


def test_the_throttle_is_per_user(alice, bob, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    alice_client, bob_client = token_client(alice), token_client(bob)
    assert [alice_client.get("/api/portfolios/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = alice_client.get("/api/portfolios/")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert bob_client.get("/api/portfolios/").status_code == 200


def test_the_throttle_is_configured_in_settings(settings):
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"]
    assert "rest_framework.throttling.UserRateThrottle" in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]
    assert UserRateThrottle().parse_rate(rate)[0] > 0


def test_any_other_api_url_is_a_json_404_for_users_and_401_for_anonymous(alice, client):
    api = token_client(alice)
    for url in ("/api/portfolios/abc/", "/api/nothing-here/", "/api/runs/-1/", "/api/portfolios/1%0A/import/"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json"
        assert "No such API endpoint" in response.json()["detail"]
        assert client.get(url).status_code == 401
    missing_slash = api.post("/api/portfolios", {"name": "x"}, format="json")
    assert missing_slash.status_code == 404
    assert "/api/portfolios/ (with the trailing slash)" in missing_slash.json()["detail"]
    assert not Portfolio.objects.exists()
