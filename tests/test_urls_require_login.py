"""Walk the URL conf: every app URL but the landing page, health and /accounts/ refuses anonymous users."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PUBLIC = {"landing", "health", "drift_unsubscribe"}


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.name


def _concrete(route: str) -> str:
    route = re.sub(r"<int:[^>]+>", "1", route)
    route = re.sub(r"<[^>]+>", "x", route)
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    return "/" + route


def app_routes():
    for route, name in _walk(get_resolver().url_patterns):
        if route.startswith(("admin/", "accounts/", "static/")) or name in PUBLIC:
            continue
        if any(ch in route for ch in "()?[]*+"):  # regex routes (e.g. format suffixes)
            continue
        yield route, name


def test_the_walk_finds_the_app_urls():
    names = {name for _, name in app_routes()}
    assert "portfolio_list" in names
    assert "portfolio_detail" in names


@pytest.mark.parametrize("route,name", list(app_routes()))
def test_it_refuses_anonymous(client, route, name):
    url = _concrete(route)
    response = client.get(url)
    if url.startswith("/api/"):
        assert response.status_code in (401, 403), (url, response.status_code)
    else:
        assert response.status_code == 302, (url, response.status_code)
        assert response.url.startswith("/accounts/login/?next="), response.url


def test_anonymous_portfolios_redirects_with_next(client):
    response = client.get("/portfolios/")
    assert response.status_code == 302
    assert response.url == "/accounts/login/?next=/portfolios/"


def test_landing_and_health_are_public(client):
    assert client.get("/").status_code == 200
    health = client.get("/health/")
    assert health.status_code == 200 and health.json()["ok"] is True
