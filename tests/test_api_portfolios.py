"""Contract of /api/portfolios/ and /api/portfolios/{id}/ (DESIGN.md "REST API")."""

import pytest

from portfolios.models import Holding, Portfolio, RebalanceRun
from tests.test_api_fixtures import _fresh_throttle_history, portfolio_with_holdings, token_client  # noqa: F401

pytestmark = pytest.mark.django_db


def test_it_creates_a_portfolio_and_answers_201_with_its_id(alice):
    response = token_client(alice).post("/api/portfolios/", {"name": "Retirement", "profile": "aggressive"},
                                        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    portfolio = Portfolio.objects.get(pk=body["id"])
    assert (portfolio.owner, portfolio.name, portfolio.profile) == (alice, "Retirement", "aggressive")
    assert body == {"id": portfolio.pk, "name": "Retirement", "profile": "aggressive", "value": 0.0, "cash": 0.0,
                    "holdings": [], "target": {"kind": "thesis"}, "bands": {"absolute": 0.05, "relative": 0.25},
                    "tax_budget": 0.01, "max_funds": 6, "min_trade_usd": 250.0, "min_trade_fraction": 0.0025}
    assert response["Location"] == f"/api/portfolios/{portfolio.pk}/"


def test_it_defaults_the_profile_to_moderate(alice):
    response = token_client(alice).post("/api/portfolios/", {"name": "Plain"}, format="json")
    assert response.status_code == 201
    assert response.json()["profile"] == "moderate"


@pytest.mark.parametrize("body,field", [
    ({"profile": "moderate"}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "Ok", "profile": "yolo"}, "profile"),
    ({"name": 123}, "name"),
    ({"name": "bad\x00name"}, "name"),
    ({"name": "\x1f" + "x" * 100}, "name"),
])
def test_it_refuses_a_bad_portfolio_and_writes_nothing(alice, body, field):
    response = token_client(alice).post("/api/portfolios/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Portfolio.objects.exists()


def test_the_list_shows_only_your_portfolios_paginated(alice, bob):
    mine = [Portfolio.objects.create(owner=alice, name=f"P{i:02d}") for i in range(3)]
    Portfolio.objects.create(owner=bob, name="Bob's")
    response = token_client(alice).get("/api/portfolios/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert body["next"] is None
    assert [p["id"] for p in body["results"]] == [p.pk for p in mine]
    assert body["results"][0] == {"id": mine[0].pk, "name": "P00", "profile": "moderate"}


def test_the_list_paginates_at_the_page_size(alice, settings):
    from django.conf import settings as dj

    page_size = dj.REST_FRAMEWORK["PAGE_SIZE"]
    Portfolio.objects.bulk_create(Portfolio(owner=alice, name=f"P{i:03d}") for i in range(page_size + 2))
    client = token_client(alice)
    first = client.get("/api/portfolios/").json()
    assert first["count"] == page_size + 2
    assert len(first["results"]) == page_size
    assert first["next"].endswith("/api/portfolios/?page=2")
    second = client.get("/api/portfolios/?page=2").json()
    assert [p["name"] for p in second["results"]] == [f"P{page_size:03d}", f"P{page_size + 1:03d}"]
    assert client.get("/api/portfolios/?page=9").status_code == 404


def test_the_detail_values_the_holdings(alice):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).get(f"/api/portfolios/{portfolio.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("id", "name", "profile")} == {"id": portfolio.pk, "name": "Main",
                                                                "profile": "moderate"}
    by_ticker = {h["ticker"]: h for h in body["holdings"]}
    assert set(by_ticker) == {"AAPL", "XLF", "ZZZQ"}
    assert by_ticker["AAPL"] == {"ticker": "AAPL", "account": "Taxable", "shares": 10.0, "cost_basis": 1500.0,
                                 "price": 200.0, "value": 2000.0}
    assert by_ticker["XLF"]["account"] == "IRA"
    assert by_ticker["XLF"]["cost_basis"] is None
    assert by_ticker["XLF"]["value"] == pytest.approx(200.0)
    assert by_ticker["ZZZQ"]["price"] is None and by_ticker["ZZZQ"]["value"] is None
    assert body["cash"] == 250.0
    assert body["value"] == pytest.approx(2000.0 + 200.0 + 250.0)


def test_patch_renames_and_changes_the_profile(alice):
    portfolio = portfolio_with_holdings(alice)
    client = token_client(alice)
    response = client.patch(f"/api/portfolios/{portfolio.pk}/", {"profile": "conservative"}, format="json")
    assert response.status_code == 200
    assert response.json()["profile"] == "conservative"
    response = client.patch(f"/api/portfolios/{portfolio.pk}/", {"name": "Renamed"}, format="json")
    assert response.json()["name"] == "Renamed"
    portfolio.refresh_from_db()
    assert (portfolio.name, portfolio.profile) == ("Renamed", "conservative")
    assert len(response.json()["holdings"]) == 3


def test_patch_refuses_bad_values_and_changes_nothing(alice):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).patch(f"/api/portfolios/{portfolio.pk}/", {"name": "", "profile": "x"},
                                         format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "profile"}
    portfolio.refresh_from_db()
    assert (portfolio.name, portfolio.profile) == ("Main", "moderate")


def test_put_is_not_offered(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="Main")
    response = token_client(alice).put(f"/api/portfolios/{portfolio.pk}/", {"name": "X"}, format="json")
    assert response.status_code == 405
    assert "PUT" not in response["Allow"]
    assert "PATCH" in response["Allow"]


def test_delete_removes_the_portfolio_and_its_holdings(alice):
    portfolio = portfolio_with_holdings(alice)
    client = token_client(alice)
    response = client.delete(f"/api/portfolios/{portfolio.pk}/")
    assert response.status_code == 204
    assert not Portfolio.objects.filter(pk=portfolio.pk).exists()
    assert not Holding.objects.exists()
    assert client.get(f"/api/portfolios/{portfolio.pk}/").status_code == 404


def test_a_new_profile_recomputes_the_suggestion_but_a_rename_does_not(alice, django_capture_on_commit_callbacks):
    portfolio = portfolio_with_holdings(alice)
    empty = Portfolio.objects.create(owner=alice, name="Empty")
    client = token_client(alice)
    client.patch(f"/api/portfolios/{portfolio.pk}/", {"name": "Renamed", "profile": "moderate"}, format="json")
    client.patch(f"/api/portfolios/{empty.pk}/", {"profile": "aggressive"}, format="json")
    assert not RebalanceRun.objects.exists(), "same profile, or nothing to rebalance: no run"
    with django_capture_on_commit_callbacks() as callbacks:
        client.patch(f"/api/portfolios/{portfolio.pk}/", {"profile": "aggressive"}, format="json")
    run = RebalanceRun.objects.get()
    assert (run.portfolio_id, run.trigger, run.profile) == (portfolio.pk, "options", "aggressive")
    assert len(callbacks) == 1
