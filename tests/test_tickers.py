"""The one ticker normaliser (engine.tickers): every spelling of a class share meets, bad text is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.tickers import ticker_key, ticker_normalize


@pytest.mark.parametrize("raw", ["BRK-B", "BRK.B", "BRK/B", "BRK B", " brk.b ", "BRKB", "brkb"])
def test_it_spells_every_class_share_the_yahoo_way(raw):
    assert ticker_normalize(raw) == "BRK-B"
    assert ticker_key(raw) == "BRK-B"


@pytest.mark.parametrize("raw", ["aapl", " AAPL ", "RY.TO", "^GSPC"[1:], "912797GK4"])
def test_it_keeps_plain_tickers_exchange_suffixes_and_cusips(raw):
    assert ticker_normalize(raw) == raw.strip().upper()


@pytest.mark.parametrize("raw", ["", "   ", "=HYPERLINK()", "-AAPL", "A" * 25, "AA PL X", "ABC-"])
def test_it_refuses_what_cannot_be_a_ticker_with_a_reason(raw):
    with pytest.raises(ValueError, match=r"ticker"):
        ticker_normalize(raw)


@given(st.text(max_size=30))
def test_normalize_is_idempotent_and_agrees_with_the_lenient_key(text):
    try:
        once = ticker_normalize(text)
    except ValueError:
        return
    assert ticker_normalize(once) == once
    assert ticker_key(text) == once
