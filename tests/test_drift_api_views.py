"""Targets and bands through the API and the web form; the alert setting; unsubscribe. Bad input names the
field and writes nothing."""

from __future__ import annotations

import pytest

from portfolios.drift.emails import unsubscribe_token
from portfolios.models import DriftAlertSetting, Portfolio, Security
from tests.test_api_fixtures import _fresh_throttle_history, token_client  # noqa: F401

pytestmark = pytest.mark.django_db

CUSTOM = {"kind": "custom", "mix": {"stocks": 0.6, "bonds": 0.35, "cash": 0.05},
          "funds": {"stocks": {"VTI": 0.8, "VXUS": 0.2}, "bonds": {"BND": 1.0}},
          "sectors": {"Financials": 0.05}}


@pytest.fixture
def menu(db):
    for ticker, klass in (("VTI", "equity"), ("VXUS", "equity"), ("XLF", "equity"), ("BND", "bond")):
        Security.objects.create(ticker=ticker, kind="etf", asset_class=klass, is_menu=True, priced=True)
    Security.objects.create(ticker="AAPL", kind="stock", asset_class="equity", priced=True)


def test_the_api_reads_and_sets_a_custom_target_and_bands(alice, menu):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    client = token_client(alice)
    assert client.get(f"/api/portfolios/{portfolio.pk}/").json()["target"] == {"kind": "thesis"}
    response = client.patch(f"/api/portfolios/{portfolio.pk}/", {"target": CUSTOM, "bands": {
        "absolute": 0.03, "relative": 0.2}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["target"]["mix"] == CUSTOM["mix"] and body["bands"] == {"absolute": 0.03, "relative": 0.2}
    portfolio.refresh_from_db()
    assert portfolio.target["funds"]["stocks"] == {"VTI": 0.8, "VXUS": 0.2}
    response = client.patch(f"/api/portfolios/{portfolio.pk}/", {"target": {"kind": "neutral"}}, format="json")
    assert response.json()["target"] == {"kind": "neutral"}
    portfolio.refresh_from_db()
    assert portfolio.use_views is False


@pytest.mark.parametrize("body,field", [
    ({"target": {"kind": "yolo"}}, "target.kind"),
    ({"target": {**CUSTOM, "mix": {"stocks": 0.6, "bonds": 0.3, "cash": 0.05}}}, "target.mix"),
    ({"target": {**CUSTOM, "funds": {"stocks": {"AAPL": 1.0}}}}, "target.funds.stocks"),
    ({"target": {**CUSTOM, "funds": {"stocks": {"BND": 1.0}}}}, "target.funds.stocks"),
    ({"target": {**CUSTOM, "funds": {"bonds": {"BND": 0.5}}}}, "target.funds.bonds"),
    ({"target": {**CUSTOM, "sectors": {"Crypto": 0.1}}}, "target.sectors"),
    ({"target": {**CUSTOM, "size": {"large": 1.0}}}, "target.size"),
    ({"target": {"kind": "thesis", "mix": {}}}, "target.mix"),
    ({"target": "custom"}, "target"),
    ({"bands": {"absolute": 2, "relative": 0.25}}, "bands.absolute"),
    ({"bands": {"absolute": 0.05}}, "bands"),
])
def test_the_api_refuses_a_bad_target_naming_the_field_and_writes_nothing(alice, menu, body, field):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    response = token_client(alice).patch(f"/api/portfolios/{portfolio.pk}/", body, format="json")
    assert response.status_code == 400
    key = next(iter(body))
    assert any(message.startswith(field) for message in response.json()[key]), response.json()
    fresh = Portfolio.objects.get(pk=portfolio.pk)
    assert (fresh.target, fresh.bands) == (portfolio.target, portfolio.bands)


def test_another_users_portfolio_target_is_a_404(alice, bob_client, menu):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    assert bob_client.get(f"/portfolios/{portfolio.pk}/target/").status_code == 404
    assert bob_client.post(f"/portfolios/{portfolio.pk}/target/", {"kind": "neutral"}).status_code == 404


def test_the_schema_documents_target_and_bands(alice):
    schema = token_client(alice).get("/api/schema/?format=json").json()
    props = schema["components"]["schemas"]["PortfolioDetail"]["properties"]
    assert [o["properties"]["kind"]["enum"][0] for o in props["target"]["oneOf"]] == ["thesis", "neutral", "custom"]
    assert "absolute" in props["bands"]["properties"]


def form(**overrides):
    data = {"kind": "custom", "stocks_pct": "60", "bonds_pct": "35", "cash_pct": "5", "stock_funds": "VTI 80, VXUS 20",
            "bond_funds": "BND 100", "band_absolute_pct": "5", "band_relative_pct": "25"}
    data.update(overrides)
    return data


def test_the_form_saves_a_custom_target(alice_client, alice, menu):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    response = alice_client.post(f"/portfolios/{portfolio.pk}/target/", form(sector_financials="5"))
    assert response.status_code == 302
    portfolio.refresh_from_db()
    assert portfolio.target["mix"] == {"stocks": 0.6, "bonds": 0.35, "cash": 0.05}
    assert portfolio.target["sectors"] == {"Financials": 0.05}
    page = alice_client.get(f"/portfolios/{portfolio.pk}/target/").content.decode()
    assert 'value="VTI 80, VXUS 20"' in page


@pytest.mark.parametrize("overrides,field,words", [
    ({"cash_pct": "15"}, "stocks_pct", "must sum to 100%"),
    ({"stock_funds": "AAPL 100"}, "stock_funds", "not on the menu"),
    ({"stock_funds": "VTI eighty"}, "stock_funds", "ticker and its percentage"),
    ({"bond_funds": "BND 50"}, "bond_funds", "sum to 100%"),
    ({"band_absolute_pct": "0"}, "band_absolute_pct", "greater than or equal"),
    ({"sector_energy": "80"}, "sector_energy", "less than or equal"),
    ({"kind": "other"}, "kind", "valid choice"),
])
def test_the_form_refuses_bad_input_naming_the_field(alice_client, alice, menu, overrides, field, words):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    response = alice_client.post(f"/portfolios/{portfolio.pk}/target/", form(**overrides))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and words in " ".join(errors[field]), errors
    assert Portfolio.objects.get(pk=portfolio.pk).target == {"kind": "thesis"}


def test_the_alert_setting_and_a_bad_value(alice_client, alice):
    assert alice_client.post("/settings/alerts/", {"mode": "weekly"}).status_code == 302
    assert DriftAlertSetting.objects.get(user=alice).mode == "weekly"
    response = alice_client.post("/settings/alerts/", {"mode": "hourly"})
    assert response.status_code == 400 and "Drift e-mails" in response.content.decode()
    assert DriftAlertSetting.objects.get(user=alice).mode == "weekly"


def test_unsubscribe_needs_no_sign_in_and_refuses_a_forged_token(client, alice):
    assert client.get("/alerts/unsubscribe/forged-token/").status_code == 400
    assert not DriftAlertSetting.objects.filter(user=alice).exists()
    token = unsubscribe_token(user_id=alice.pk)
    assert client.post(f"/alerts/unsubscribe/{token}/").status_code == 200  # RFC 8058 one-click POST
    assert DriftAlertSetting.objects.get(user=alice).mode == "off"


def test_the_list_shows_a_badge_and_the_page_a_drift_panel(alice_client, alice):
    from portfolios.models import DriftCheck

    portfolio = Portfolio.objects.create(owner=alice, name="P")
    DriftCheck.objects.create(portfolio=portfolio, status="drifted", largest=0.12, largest_label="NVDA",
                              items=[{"group": "name", "name": "NVDA", "current": 0.2, "target": 0.08,
                                      "drift": 0.12, "band": 0.02}])
    DriftCheck.objects.create(portfolio=portfolio, status="breaks_limit", largest=0.2, largest_label="NVDA",
                              limits=[{"limit": "single stock", "value": 0.08, "excess": 0.12}], since_plan=0.1)
    listing = alice_client.get("/portfolios/").content.decode()
    assert "breaks a limit" in listing
    page = alice_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    assert 'id="drift-chart"' in page and "since the last suggestion" in page
    assert "largest single name 12.0 points above the cap of 8.0%" in page
