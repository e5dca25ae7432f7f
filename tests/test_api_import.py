"""Contract of POST /api/portfolios/{id}/import/ (multipart `file`, optional `mode`)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portfolios.models import Holding, RebalanceRun
from tests.test_api_fixtures import _fresh_throttle_history, portfolio_with_holdings, security, token_client  # noqa: F401

pytestmark = pytest.mark.django_db


def _upload(text: str, name: str = "positions.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def _holdings(portfolio) -> set[tuple[str, str, float]]:
    return {(h.account.name, h.security.ticker, float(h.shares))
            for h in Holding.objects.filter(account__portfolio=portfolio).select_related("account", "security")}


def test_it_imports_a_file_and_answers_the_counts(alice, django_capture_on_commit_callbacks):
    portfolio = portfolio_with_holdings(alice)
    security("MSFT", 400.0)
    body = "ticker,shares,cost_basis\nMSFT,5,1200\nXLF,10,\n"
    with django_capture_on_commit_callbacks() as callbacks:
        response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": _upload(body)},
                                            format="multipart")
    assert response.status_code == 200, response.content
    assert response.json() == {"holdings": 2, "accounts": 1, "warnings": response.json()["warnings"]}
    assert isinstance(response.json()["warnings"], list)
    assert _holdings(portfolio) == {("Taxable", "MSFT", 5.0), ("Taxable", "XLF", 10.0)}, "replace is the default"
    assert RebalanceRun.objects.get(portfolio=portfolio).trigger == "import"
    assert len(callbacks) == 1
    detail = token_client(alice).get(f"/api/portfolios/{portfolio.pk}/").json()
    msft = next(h for h in detail["holdings"] if h["ticker"] == "MSFT")
    assert msft == {"ticker": "MSFT", "account": "Taxable", "shares": 5.0, "cost_basis": 1200.0, "price": 400.0,
                    "value": 2000.0}


def test_merge_keeps_the_other_holdings(alice):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/",
                                        {"file": _upload("ticker,shares\nMSFT,5\n"), "mode": "merge"},
                                        format="multipart")
    assert response.status_code == 200, response.content
    assert _holdings(portfolio) == {("Taxable", "AAPL", 10.0), ("Taxable", "MSFT", 5.0), ("IRA", "XLF", 4.0),
                                    ("IRA", "ZZZQ", 3.0)}


def test_unknown_tickers_come_back_as_warnings(alice):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/",
                                        {"file": _upload("ticker,shares\nQWERTYX,5\n")}, format="multipart")
    assert response.status_code == 200
    assert any("QWERTYX" in w for w in response.json()["warnings"])


def test_a_bad_file_is_refused_with_line_and_field_and_nothing_is_written(alice):
    portfolio = portfolio_with_holdings(alice)
    before = _holdings(portfolio)
    body = "ticker,shares\nMSFT,5\nAAPL,lots\n"
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": _upload(body)},
                                        format="multipart")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors, response.content
    assert {"line", "field", "message"} == set(errors[0])
    assert (errors[0]["line"], errors[0]["field"]) == (3, "shares")
    assert "lots" in errors[0]["message"]
    assert _holdings(portfolio) == before
    assert not RebalanceRun.objects.exists()


def test_every_problem_is_listed(alice):
    portfolio = portfolio_with_holdings(alice)
    body = "ticker,shares\nMSFT,-5\n,3\nAAPL,abc\n"
    errors = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": _upload(body)},
                                      format="multipart").json()["errors"]
    assert {e["line"] for e in errors} == {2, 3, 4}


@pytest.mark.parametrize("data,field", [
    ({}, "file"),
    ({"file": "not a file"}, "file"),
    ({"mode": "append"}, "mode"),
])
def test_a_bad_form_is_refused_in_the_same_error_shape(alice, data, field):
    portfolio = portfolio_with_holdings(alice)
    if field == "mode":
        data = {**data, "file": _upload("ticker,shares\nMSFT,5\n")}
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", data, format="multipart")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert errors[0]["line"] is None and errors[0]["message"]
    assert len(_holdings(portfolio)) == 3


def test_an_oversized_file_is_refused_before_it_is_read(alice, settings):
    settings.IMPORT_MAX_BYTES = 2048
    portfolio = portfolio_with_holdings(alice)
    body = "ticker,shares\n" + "MSFT,1\n" * 400
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": _upload(body)},
                                        format="multipart")
    assert response.status_code == 400
    assert "limit is 2,048 bytes" in response.json()["errors"][0]["message"]
    assert len(_holdings(portfolio)) == 3


def test_an_empty_file_is_refused_by_the_importer(alice):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": _upload("")},
                                        format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


def test_json_is_not_an_upload(alice):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/import/", {"file": "MSFT,5"}, format="json")
    assert response.status_code == 415
