"""Files that are not positions files, told by their header, refused with what they look like and which
export to upload instead (a transaction history, a lot-detail or realized gain/loss report)."""

from __future__ import annotations

from portfolios.holdings.importers.text import header_key

WHERE_POSITIONS = (
    "upload the positions (holdings) export instead: Fidelity: Accounts & Trade > Portfolio > Positions > "
    "Download; Schwab: Accounts > Positions > Export; Vanguard: Balances & holdings > Download; E*TRADE: "
    "Portfolios > Positions > Download; Merrill Edge: Portfolio > Holdings > Export; Interactive Brokers: the "
    "Activity Statement with Open Positions; or any broker's OFX/QFX (Quicken) download"
)
TRADE_COLUMNS = {
    "run date", "trade date", "action", "transaction type", "transactiontype", "transactiondate",
    "transaction date", "settlement date", "activity type", "transaction", "buy/sell",
}
LOT_COLUMNS = {
    "closed date", "date sold", "proceeds", "opened date", "cost/share", "holding period", "realized gain/loss",
    "short-term gain/loss", "long-term gain/loss", "wash sale", "disallowed loss", "lot id", "lot",
}


def refusal_for(cells: list[str]) -> str | None:
    """A message when this header row is a trades-only or lot-detail export; None otherwise."""
    keys = {header_key(c) for c in cells if c.strip()}
    shown = ", ".join(f"“{c.strip()[:24]}”" for c in cells[:6] if c.strip())
    if len(keys & TRADE_COLUMNS) and ("symbol" in keys or "quantity" in keys or "amount" in keys):
        return (f"this file is a transaction history (columns {shown}): it lists trades, not what you hold, so no "
                f"portfolio can be formed from it; {WHERE_POSITIONS}")
    if len(keys & LOT_COLUMNS) and ("symbol" in keys or "quantity" in keys):
        return (f"this file is a lot-detail or gain/loss report (columns {shown}): it lists tax lots or closed "
                f"trades, not the account's positions and cash; {WHERE_POSITIONS}")
    return None
