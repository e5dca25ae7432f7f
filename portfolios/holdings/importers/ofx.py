"""OFX/QFX investment statements (the "Quicken" or "Money" download most US brokers offer), read with
`ofxtools` (SGML v1 and XML v2).

Each statement (`INVSTMTRS`) is an account: its positions (`INVPOSLIST`: stocks, mutual funds, options,
debt, other) with units, unit price and market value; its cash (`INVBAL` `AVAILCASH`); the securities list
(`SECLIST`) maps each position's CUSIP to its ticker and name. Amounts are in the statement's currency
(`CURDEF`) unless a position names its own with a rate (`CURRENCY`: `CURRATE` converts to `CURDEF`); a
statement not in USD is converted with a USD rate the file gives, and refused otherwise.
"""

from __future__ import annotations

import io
import re
import warnings
from decimal import Decimal

from portfolios.holdings.importers import securities
from portfolios.holdings.importers.base import (
    DEFAULT_ACCOUNT,
    FileBuilder,
    ImportFailed,
    ImportProblem,
    mask_number,
)

FORMAT = "ofx"
BROKER = ""
_POSITION_KINDS = {"POSSTOCK": "", "POSMF": securities.FUND, "POSOPT": securities.OPTION,
                   "POSDEBT": securities.BOND, "POSOTHER": ""}
_POSITION_TAG = re.compile(r"<(POSSTOCK|POSMF|POSOPT|POSDEBT|POSOTHER)>", re.IGNORECASE)


def content_matches(data: bytes) -> bool:
    """An OFX file, told by its content (not its name): an OFX header or an `<OFX>` root near the start."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    return head.startswith((b"OFXHEADER", b"<OFX>")) or (head.startswith(b"<?XML") and b"<?OFX" in head)


MAX_DEPTH = 40  # real statements nest about 10 aggregates deep
MAX_TAGS_PER_POSITION = 40  # a position and its security-list entry take about 25 tags
_TAG = re.compile(rb"<(/?)([A-Za-z0-9.]+)[^>]*>(?=(\s*<)?)")  # group 3: another tag follows at once


def shape_check(data: bytes, *, max_positions: int) -> None:
    """Refuse, before the parser sees it, an OFX file nested deeper than any statement (the parser recurses
    once per level) or with more positions than the row limit; one linear scan."""
    if data.count(b"<") > MAX_TAGS_PER_POSITION * max_positions + 2000:
        raise ImportFailed([ImportProblem(None, "", "the OFX file has far more elements than its positions "
                                                    "need; it is not a statement a broker exports")])
    open_aggregates: list[bytes] = []
    for match in _TAG.finditer(data):
        closing, name, next_tag = match.groups()
        name = name.upper()
        if closing:
            if name in open_aggregates:  # a leaf's own closing tag (XML) closes nothing here
                del open_aggregates[len(open_aggregates) - 1 - open_aggregates[::-1].index(name):]
        elif next_tag:  # an aggregate: another tag follows at once
            open_aggregates.append(name)
            if len(open_aggregates) > MAX_DEPTH:
                line = data.count(b"\n", 0, match.start()) + 1
                raise ImportFailed([ImportProblem(line, "", f"the OFX file nests more than {MAX_DEPTH} levels deep; "
                                                            "it is not a statement a broker exports")])
    positions = len(_POSITION_TAG.findall(data.decode("latin-1")))
    if positions > max_positions:
        raise ImportFailed([ImportProblem(None, "", f"the file has {positions:,} positions; the limit is "
                                                    f"{max_positions:,}")])


def read(data: bytes, builder: FileBuilder) -> None:
    from ofxtools.Parser import OFXTree  # imported here: only OFX uploads pay for it

    tree = OFXTree()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tags it does not know are skipped (brokers add their own)
            tree.parse(io.BytesIO(data))
            ofx = tree.convert()
    except Exception as exc:  # ofxtools raises many types (header, SGML, schema errors)
        message = re.sub(r"\s+", " ", str(exc))[:200] or type(exc).__name__
        raise ImportFailed([ImportProblem(None, "", f"this looks like an OFX/QFX file but cannot be read: {message}."
                                                    " Download the statement again from your broker")])
    tickers, names = _security_list(ofx)
    statements = [s for s in ofx.statements if type(s).__name__ == "INVSTMTRS"]
    if not statements:
        raise ImportFailed([ImportProblem(None, "", "this OFX file holds no investment statement (a bank or card "
                                                    "download?); download your brokerage account's positions as "
                                                    "OFX/QFX, or its positions CSV")])
    text = data.decode("latin-1")
    lines = [text.count("\n", 0, m.start()) + 1 for m in _POSITION_TAG.finditer(text)]
    position_index = 0
    for statement in statements:
        position_index = _statement(statement, builder, tickers, names, lines, position_index)


def _security_list(ofx) -> tuple[dict[str, str], dict[str, str]]:
    tickers: dict[str, str] = {}
    names: dict[str, str] = {}
    for info in ofx.securities or []:
        secinfo = info.secinfo
        key = secinfo.secid.uniqueid
        if secinfo.ticker:
            tickers[key] = secinfo.ticker.strip()
        names[key] = (secinfo.secname or "").strip()
    return tickers, names


def _statement(statement, builder: FileBuilder, tickers: dict[str, str], names: dict[str, str],
               lines: list[int], index: int) -> int:
    currency = (statement.curdef or "USD").upper()
    account = statement.invacctfrom
    broker = (account.brokerid or "").strip()
    builder.broker = builder.broker or broker
    number = (account.acctid or "").strip()
    key = builder.account(name=f"{broker or DEFAULT_ACCOUNT} {mask_number(number)}".strip(), number=number)
    if statement.dtasof and builder.as_of is None:
        builder.as_of = statement.dtasof.date()
    _usd_rate_from_positions(statement, builder, currency)
    for position in statement.invposlist or []:
        line = lines[index] if index < len(lines) else 1
        index += 1
        _position(position, builder, key, currency, tickers, names, line)
    balance = statement.invbal
    if balance is not None and balance.availcash is not None:
        rate = builder.rate_for(currency, line=None, field_name="AVAILCASH")
        if rate is not None:
            builder.cash(account_key=key, line=1, amount=(_text(balance.availcash), "AVAILCASH"), rate=rate)
    return index


def _usd_rate_from_positions(statement, builder: FileBuilder, currency: str) -> None:
    """A statement in another currency may give USD's rate on a position (`CURSYM` USD, `CURRATE`)."""
    if currency == "USD" or currency in builder.rates:
        return
    for position in statement.invposlist or []:
        own = position.invpos.currency
        if own is not None and (own.cursym or "").upper() == "USD" and own.currate:
            builder.rates[currency] = Decimal(1) / Decimal(own.currate)
            return


def _position(position, builder: FileBuilder, key: tuple[str, str], currency: str, tickers: dict[str, str],
              names: dict[str, str], line: int) -> None:
    invpos = position.invpos
    secid = invpos.secid.uniqueid
    ticker = tickers.get(secid) or secid
    kind = _POSITION_KINDS.get(type(position).__name__, "")
    units = Decimal(invpos.units)
    if invpos.postype == "SHORT" and units > 0:
        units = -units
    rate = _rate(invpos, builder, currency, line)
    if rate is None:
        return
    if units < 0 and kind != securities.OPTION:
        builder.skip(f"{ticker} (short, line {line})", (_text(invpos.mktval), "MKTVAL"), line=line, rate=rate,
                     named=True)
        builder.warn(f"Skipped the short position in {ticker} (line {line}): short positions are not supported.")
        return
    builder.position(
        account_key=key, line=line, ticker=(ticker, "TICKER" if secid in tickers else "UNIQUEID"),
        shares=(_text(units), "UNITS"), price=(_text(invpos.unitprice), "UNITPRICE"),
        market_value=(_text(invpos.mktval), "MKTVAL"), kind=kind, description=names.get(secid, ""), rate=rate,
    )


def _rate(invpos, builder: FileBuilder, currency: str, line: int) -> Decimal | None:
    own = invpos.currency
    if own is None or not own.cursym or own.cursym.upper() == currency:
        return builder.rate_for(currency, line=line, field_name="CURDEF")
    statement_rate = builder.rate_for(currency, line=line, field_name="CURDEF")
    if statement_rate is None:
        return None
    return Decimal(own.currate) * statement_rate  # CURRATE: units of CURDEF per unit of CURSYM


def _text(number) -> str:
    return format(Decimal(number), "f")
