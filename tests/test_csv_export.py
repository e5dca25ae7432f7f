import csv
import io

from portfolios.csv_export import csv_text, safe_cell, trades_csv_rows


def test_it_neutralises_formulas_but_keeps_numbers():
    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("+1") == "'+1"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell(-12.5) == -12.5
    assert safe_cell("AAPL") == "AAPL"
    assert safe_cell(None) == ""


def test_trades_round_trip_through_csv():
    result = {"trades": [{"ticker": "XLF", "account": "=cmd()", "action": "buy", "shares": 3,
                          "price": 50.0, "amount": 150.0, "reason": "adds Financials"}]}
    text = csv_text(["ticker", "account", "action", "shares", "price", "amount", "reason"], trades_csv_rows(result))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["XLF", "'=cmd()", "buy", "3", "50.0", "150.0", "adds Financials"]
