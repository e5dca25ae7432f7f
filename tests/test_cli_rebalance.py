"""`manage.py rebalance`: the DESIGN.md JSON contract, a fresh database, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIDELITY = ROOT / "tests" / "fixtures" / "brokers" / "Portfolio_Positions_Dec-31-2025.csv"
FRACTIONAL_HOLDINGS = {("VTI", 30.125)}  # the Fidelity file's fractional lot (Traditional IRA)
GENERIC = ROOT / "tests" / "fixtures" / "brokers" / "generic.csv"
SNAPSHOT_KEYS = {"weights", "sectors", "size", "volatility"}
GICS = {
    "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials", "Health Care",
    "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities",
}


def manage(*args: str, db_path: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"DATABASE_URL": f"sqlite:///{db_path}", "DJANGO_SETTINGS_MODULE": "advisor.settings"})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def fresh_db(tmp_path_factory) -> Path:
    """A brand-new SQLite database with nothing but `migrate` run."""
    db_path = tmp_path_factory.mktemp("cli") / "fresh.sqlite3"
    result = manage("migrate", "--noinput", "-v", "0", db_path=db_path)
    assert result.returncode == 0, result.stderr
    return db_path


def check_snapshot(snapshot: dict) -> None:
    assert set(snapshot) >= SNAPSHOT_KEYS
    assert abs(sum(snapshot["weights"].values()) - 1) < 1e-4
    assert all(w >= -1e-9 for w in snapshot["weights"].values()), "no shorts"
    assert set(snapshot["sectors"]) <= GICS
    assert abs(sum(snapshot["sectors"].values()) - 1) < 1e-3
    assert set(snapshot["size"]) <= {"large", "mid", "small"}
    assert abs(sum(snapshot["size"].values()) - 1) < 1e-3
    assert 0 < snapshot["volatility"] < 1


def test_it_prints_the_design_document_on_a_fresh_database(fresh_db):
    result = manage("rebalance", "--holdings", str(FIDELITY), "--profile", "moderate", db_path=fresh_db)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # stdout holds exactly one JSON document
    assert {"as_of", "profile", "status", "value", "trades", "before", "after", "warnings"} <= set(doc)
    assert doc["as_of"] == "2025-12-31"
    assert doc["profile"] == "moderate"
    assert doc["status"] in ("optimal", "relaxed")
    assert doc["value"] > 0
    check_snapshot(doc["before"])
    check_snapshot(doc["after"])
    assert "CASH" in doc["before"]["weights"]
    assert doc["after"]["sectors"]["Information Technology"] < doc["before"]["sectors"]["Information Technology"]
    for trade in doc["trades"]:
        assert {"ticker", "account", "action", "shares", "price", "amount", "reason"} <= set(trade)
        assert trade["action"] in ("buy", "sell")
        whole_holding = trade["action"] == "sell" and (trade["ticker"], trade["shares"]) in FRACTIONAL_HOLDINGS
        assert trade["shares"] > 0 and (trade["shares"] == int(trade["shares"]) or whole_holding), \
            "whole shares by default (a fractional holding may be sold whole)"
        assert abs(trade["amount"] - trade["shares"] * trade["price"]) < 0.011, "amount = shares x price as shown"
        assert trade["reason"]
    assert any("FXAIX" in w for w in doc["warnings"]), "the unpriced mutual fund is reported"
    kinds = {s["kind"] for s in doc["stress"]}
    assert kinds == {"historical", "hypothetical"}
    assert {"return_annual", "volatility", "max_drawdown"} <= set(doc["backtest"]["before"])
    # The market data loaded itself, with progress on stderr only.
    assert "Loading bundled market data" in result.stderr


def test_buy_only_never_sells_and_table_format_is_readable(fresh_db):
    result = manage("rebalance", "--holdings", str(FIDELITY), "--buy-only", "--cash", "10000", db_path=fresh_db)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["trades"] and all(t["action"] == "buy" for t in doc["trades"])
    table = manage("rebalance", "--holdings", str(GENERIC), "--format", "table", db_path=fresh_db)
    assert table.returncode == 0, table.stderr
    assert "Rebalance suggestion (moderate, prices as of 2025-12-31" in table.stdout
    assert "Volatility" in table.stdout


def test_bad_input_names_line_and_field_and_prints_nothing(fresh_db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,shares\nAAPL,10\nMSFT,-5\n")
    result = manage("rebalance", "--holdings", str(bad), db_path=fresh_db)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "line 3" in result.stderr and "shares" in result.stderr


def test_a_missing_file_is_a_clear_error(fresh_db, tmp_path):
    result = manage("rebalance", "--holdings", str(tmp_path / "nope.csv"), db_path=fresh_db)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "cannot read the holdings file" in result.stderr


def test_plan_limit_flags_reach_the_engine_and_the_document_reports_them(fresh_db):
    result = manage("rebalance", "--holdings", str(GENERIC), "--tax-budget", "none", "--max-funds", "3",
                    "--min-trade-usd", "500", "--min-trade-fraction", "0.001", db_path=fresh_db)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["tax_budget"] is None and doc["tax_spent_usd"] == 0.0
    assert doc["orders"] == len(doc["trades"])
    assert doc["funds_bought"] == len({t["ticker"] for t in doc["trades"] if t["action"] == "buy"})
    assert isinstance(doc["notes"], list) and isinstance(doc["tradeoffs"], list)
    assert "volatility_sample" in doc["before"] and "volatility_sample" in doc["after"]
    floor = max(500.0, 0.001 * doc["value"])
    assert all(t["amount"] >= floor - 0.01 for t in doc["trades"] if t["action"] == "buy"), "the minimum order holds"
    table = manage("rebalance", "--holdings", str(GENERIC), "--tax-budget", "0.005", "--format", "table",
                   db_path=fresh_db)
    assert table.returncode == 0, table.stderr
    assert "orders," in table.stdout and "funds bought, est. tax" in table.stdout
    assert "budget 0.5% a year" in table.stdout


@pytest.mark.parametrize("flags,message", [
    (("--tax-budget", "1.5"), "--tax-budget must be a fraction of value between 0 and 1"),
    (("--tax-budget", "-0.01"), "--tax-budget must be a fraction of value between 0 and 1"),
    (("--tax-budget", "lots"), "--tax-budget"),
    (("--max-funds", "0"), "--max-funds must be a whole number from 1 to 50"),
    (("--max-funds", "2.5"), "--max-funds"),
    (("--min-trade-usd", "-1"), "--min-trade-usd must be an amount from 0 to 100,000 USD"),
    (("--min-trade-fraction", "0.5"), "--min-trade-fraction must be a fraction of value from 0 to 0.1"),
])
def test_bad_plan_limits_name_the_flag_and_print_nothing(fresh_db, flags, message):
    result = manage("rebalance", "--holdings", str(GENERIC), *flags, db_path=fresh_db)
    assert result.returncode != 0
    assert result.stdout == ""
    assert message in result.stderr
