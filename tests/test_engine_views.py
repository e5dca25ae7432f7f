"""The dated views: the shipped file, validation with field names, the target it builds."""

from __future__ import annotations

import json

import pytest

from engine.errors import ViewsError
from engine.exposures import GICS_SECTORS
from engine.profiles import PROFILES
from engine.sample_data import load_bundled_market
from engine.target import build_target
from engine.views import DEFAULT_VIEWS_PATH, load_views


def test_the_shipped_views_file_is_dated_and_readable():
    views = load_views(DEFAULT_VIEWS_PATH)
    assert DEFAULT_VIEWS_PATH.name == "2026-01-rotation.json"
    assert views["as_of"].startswith("2026-01")
    assert any("15x" in fact and "22x" in fact for fact in views["facts"])
    assert any("42%" in fact for fact in views["facts"])
    assert len(views["risks"]) == 3
    assert views["tilts"]["sectors"]["Financials"] > 0
    assert views["tilts"]["size"]["small"] > 0.1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda v: v.pop("as_of"), "as_of"),
        (lambda v: v.update(as_of="January"), "as_of"),
        (lambda v: v.update(facts=[]), "facts"),
        (lambda v: v["tilts"]["sectors"].update(Crypto=0.1), "tilts.sectors.Crypto"),
        (lambda v: v["tilts"]["core"].update(RSP=5), "tilts.core"),
        (lambda v: v["tilts"].update(size={"large": 1.0}), "tilts.size"),
        (lambda v: v["tilts"]["vehicles"].update(tiny=["X"]), "tilts.vehicles.tiny"),
    ],
)
def test_a_bad_views_file_names_the_field(tmp_path, change, field):
    views = json.loads(DEFAULT_VIEWS_PATH.read_text())
    change(views)
    path = tmp_path / "views.json"
    path.write_text(json.dumps(views))
    with pytest.raises(ViewsError) as info:
        load_views(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_not_json_is_a_views_error(tmp_path):
    path = tmp_path / "views.json"
    path.write_text("{not json")
    with pytest.raises(ViewsError, match="not valid JSON"):
        load_views(path)


def test_the_views_target_tilts_toward_financials_and_small_caps():
    market = load_bundled_market(years=3)
    from engine.menu import default_menu

    menu = default_menu(market.securities)
    views = load_views()
    with_views = build_target(profile=PROFILES["moderate"], views=views, menu=menu, market=market)
    neutral = build_target(profile=PROFILES["moderate"], views=None, menu=menu, market=market)
    assert with_views.sectors["Financials"] > neutral.sectors["Financials"] + 0.02
    assert with_views.size["small"] > neutral.size["small"]
    assert with_views.sectors["Information Technology"] < neutral.sectors["Information Technology"]
    assert sum(with_views.equity_sleeve.values()) == pytest.approx(1.0)
    assert max(with_views.equity_sleeve, key=with_views.equity_sleeve.get) == "RSP"  # equal-weight core
    assert sum(with_views.weights.values()) + with_views.cash == pytest.approx(1.0)
    assert set(with_views.sectors) == set(GICS_SECTORS)
    assert "2026-01-15" in with_views.source


def test_profiles_hold_more_equity_as_they_get_aggressive():
    shares = [PROFILES[p].equity_share for p in ("conservative", "moderate", "aggressive")]
    caps = [PROFILES[p].vol_cap for p in ("conservative", "moderate", "aggressive")]
    assert shares == sorted(shares) and caps == sorted(caps)
    for profile in PROFILES.values():
        assert profile.equity_share + profile.bond_share + profile.cash_share == pytest.approx(1.0)
