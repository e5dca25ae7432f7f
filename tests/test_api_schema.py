"""The OpenAPI schema (drf-spectacular), the Swagger UI served from vendored assets, and a schemathesis
run that fuzzes every operation of the schema against the real app (real database, real views)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from portfolios.models import Portfolio
from tests.test_api_fixtures import _fresh_throttle_history, done_run, portfolio_with_holdings, token_client  # noqa: F401

pytestmark = pytest.mark.django_db

CONTRACT = {
    ("/api/portfolios/", "get"), ("/api/portfolios/", "post"),
    ("/api/portfolios/{id}/", "get"), ("/api/portfolios/{id}/", "patch"), ("/api/portfolios/{id}/", "delete"),
    ("/api/portfolios/{id}/import/", "post"), ("/api/portfolios/{id}/rebalance/", "post"),
    ("/api/portfolios/{id}/trades.csv", "get"), ("/api/runs/{id}/", "get"), ("/api/runs/{id}/executed/", "post"),
}


@pytest.fixture
def openapi(alice) -> dict:
    response = token_client(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_covers_exactly_the_contract(openapi):
    assert openapi["openapi"].startswith("3.")
    operations = {(path, method) for path, item in openapi["paths"].items() for method in item}
    assert operations == CONTRACT


def test_the_schema_declares_token_and_session_auth_on_every_operation(openapi):
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {"type": "apiKey", "in": "header", "name": "Authorization",
                                    "description": 'Token-based authentication with required prefix "Token"'}
    assert "cookieAuth" in schemes
    for path, method in CONTRACT:
        operation = openapi["paths"][path][method]
        assert {"tokenAuth": []} in operation["security"], (path, method)
        assert {"401", "403", "404"} <= set(operation["responses"]) or path == "/api/portfolios/", (path, method)


def test_the_schema_documents_the_bodies(openapi):
    paths, schemas = openapi["paths"], openapi["components"]["schemas"]
    created = paths["/api/portfolios/"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/PortfolioDetail"}
    assert set(schemas["PortfolioDetail"]["required"]) >= {"id", "name", "profile", "value", "holdings"}
    assert set(schemas["Holding"]["properties"]) == {"ticker", "account", "shares", "cost_basis", "price", "value"}

    upload = paths["/api/portfolios/{id}/import/"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert schemas["ImportRequest"]["properties"]["file"]["format"] == "binary"
    assert schemas["ImportRequest"]["required"] == ["file"]
    assert upload["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ImportErrors")
    assert set(schemas["ImportProblem"]["properties"]) == {"line", "field", "message"}

    rebalance = paths["/api/portfolios/{id}/rebalance/"]["post"]
    assert set(rebalance["responses"]) >= {"202", "400"}
    assert "200" not in rebalance["responses"]
    options = schemas["RebalanceRequest"]["properties"]
    assert {"profile", "cash", "buy_only", "keep", "fractional", "max_turnover"} <= set(options)
    assert set(schemas["RunAccepted"]["required"]) >= {"run", "status"}

    trades = paths["/api/portfolios/{id}/trades.csv"]["get"]["responses"]["200"]["content"]
    assert list(trades) == ["text/csv"]
    run = schemas["Run"]["properties"]
    assert {"status", "result", "error"} <= set(run)
    assert schemas["StatusEnum"]["enum"] == ["pending", "running", "done", "failed"]

    executed = paths["/api/runs/{id}/executed/"]["post"]
    assert set(executed["responses"]) >= {"200", "400", "404"}
    assert set(schemas["ExecutedRequest"]["properties"]) == {"trades", "prices"}
    assert "required" not in schemas["ExecutedRequest"]
    assert set(schemas["ExecutedResult"]["required"]) >= {"holdings", "executed", "run", "executed_plan"}


def test_the_docs_page_uses_only_vendored_assets(alice):
    client = token_client(alice)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert urls, "expected script and stylesheet references"
    # the start-up script is served by the docs view itself (no inline script: the CSP allows none)
    startup = [url for url in urls if url == "/api/docs/?script="]
    assert len(startup) == 1, urls
    for url in set(urls) - set(startup):
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a vendored static file"
    script = client.get(startup[0]).content.decode()
    for text in (html, script):
        assert not re.search(r"https?://", text), "the docs page must not load anything from another site"
    assert "SwaggerUIBundle" in script
    assert '"/api/schema/"' in script


# --- schemathesis ------------------------------------------------------------------------------


@pytest.fixture
def wsgi_app(settings):
    """Django's WSGI app in-process, on the test transaction (as Django's own test client does)."""
    from django.core.wsgi import get_wsgi_application

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(alice, bob) -> dict:
    """Alice (the caller) with a valued portfolio and a finished run; Bob with a portfolio she must not reach."""
    portfolio = portfolio_with_holdings(alice)
    run = done_run(portfolio)
    bobs = portfolio_with_holdings(bob, name="Bob's")
    return {"alice": alice, "portfolio": portfolio.pk, "run": run.pk, "bob_portfolio": bobs.pk,
            "bob_run": done_run(bobs).pk, "headers": {"Authorization": f"Token {Token.objects.create(user=alice).key}"}}


@pytest.fixture
def api_schema(wsgi_app, world):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=world["headers"])


def _aim_at(case, target: str, world: dict) -> None:
    """Point the case's {id} at Alice's real objects, at Bob's, or leave the generated id."""
    if "id" not in (case.path_parameters or {}) or target == "generated":
        return
    if case.path.startswith("/api/runs/"):
        case.path_parameters["id"] = world["run" if target == "mine" else "bob_run"]
    elif case.method == "DELETE" and target == "mine":
        # Delete a throwaway portfolio so the other operations keep a real one to work on.
        case.path_parameters["id"] = Portfolio.objects.create(owner=world["alice"], name="Throwaway").pk
    else:
        case.path_parameters["id"] = world["portfolio" if target == "mine" else "bob_portfolio"]


EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
TARGETS = st.sampled_from(["mine", "bobs", "generated"])


def test_every_operation_holds_its_schema(api_schema, world):
    """No 5xx; status codes, content types and bodies match the schema; invalid input is refused;
    Bob's ids always answer 404 (or a 4xx for a malformed request) and his portfolio is untouched."""
    failures: list[str] = []
    exercised = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode, max_examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode), target=TARGETS)
            @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
            def check(case, target):
                cache.clear()  # the throttle is tested elsewhere; here it would only cut the run short
                _aim_at(case, target, world)
                # A schema-valid upload may still be a bad positions file, and a schema-valid trade index may not
                # be one of the run's trades: their 400 is the contract, not a bug. Likewise a custom target must
                # sum to 100% and use menu funds, which JSON Schema cannot say.
                body = case.body if isinstance(case.body, dict) else {}
                custom = isinstance(body.get("target"), dict) and body["target"].get("kind") == "custom"
                contract_400 = case.path.endswith(("/import/", "/executed/")) or custom
                excluded = [positive_data_acceptance] if contract_400 else []
                response = case.call_and_validate(headers=world["headers"], excluded_checks=excluded)
                assert response.status_code < 500, (case.method, case.formatted_path, response.status_code)
                if target == "bobs" and "id" in (case.path_parameters or {}):
                    assert response.status_code in (400, 404, 405, 415), (case.method, case.formatted_path,
                                                                          response.status_code)
                assert Portfolio.objects.filter(pk=world["bob_portfolio"], name="Bob's").exists()

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure together
                failures.append(f"{operation.label} [{mode}]: {exc}")
            exercised.append(operation.label)
    assert len(set(exercised)) == len(CONTRACT)
    assert not failures, "\n\n".join(failures)
