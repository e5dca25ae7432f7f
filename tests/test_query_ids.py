"""Ids read from query strings and paths are parsed strictly: a bad one answers 404, never 500."""

from __future__ import annotations

import pytest

from portfolios.access import ID_MAX, id_parse
from tests.test_api_fixtures import _fresh_throttle_history, done_run, portfolio_with_holdings, token_client  # noqa: F401

pytestmark = pytest.mark.django_db

BAD_IDS = ["\u00b2", "%C2%B2", "\u0663", "\uff11", "-1", "+1", "0", " 1", "1 ", "1.0", "0x1", "", "abc",
           str(ID_MAX + 1), "1" * 5000]


@pytest.mark.parametrize("raw", ["1", "42", "0042", str(ID_MAX)])
def test_id_parse_takes_ascii_digits(raw):
    assert id_parse(raw) == int(raw)


@pytest.mark.parametrize("raw", [*BAD_IDS, None])
def test_id_parse_refuses_everything_else(raw):
    assert id_parse(raw) is None


@pytest.mark.parametrize("raw", BAD_IDS)
def test_the_web_export_answers_404_for_a_bad_run_id(alice_client, alice, raw):
    portfolio = portfolio_with_holdings(alice)
    done_run(portfolio)
    response = alice_client.get(f"/portfolios/{portfolio.pk}/trades/export.csv", {"run": raw})
    assert response.status_code == 404


def test_the_reported_url_answers_404(alice_client, alice):
    portfolio = portfolio_with_holdings(alice)
    done_run(portfolio)
    assert alice_client.get(f"/portfolios/{portfolio.pk}/trades/export.csv?run=%C2%B2").status_code == 404
    assert alice_client.get(f"/portfolios/{portfolio.pk}/trades/export.csv").status_code == 200


@pytest.mark.parametrize("raw", BAD_IDS)
def test_the_api_page_number_answers_404(alice, raw):
    response = token_client(alice).get("/api/portfolios/", {"page": raw})
    assert response.status_code == 404
    assert "page" in response.json()["detail"]


@pytest.mark.parametrize("url", [
    "/portfolios/{big}/", "/portfolios/{big}/trades/export.csv", "/portfolios/1/runs/{big}/",
    "/holdings/{big}/edit/", "/portfolios/accounts/{big}/edit/",
])
def test_an_id_beyond_the_database_range_in_a_path_is_404(alice_client, url):
    assert alice_client.get(url.format(big=10**30)).status_code == 404


@pytest.mark.parametrize("url", ["/api/portfolios/{big}/", "/api/runs/{big}/", "/api/portfolios/{big}/trades.csv"])
def test_an_api_id_beyond_the_database_range_is_404(alice, url):
    assert token_client(alice).get(url.format(big=10**30)).status_code == 404
