"""REST API serializers: validate and convert only (the logic lives in services and selectors)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from engine.tickers import TICKER_MAX_LEN, ticker_normalize
from portfolios.access import id_parse
from portfolios.holdings.services import MAX_FILL_PRICE, ExecutedSelection
from portfolios.models import (
    MAX_FUNDS_LIMIT,
    MIN_TRADE_FRACTION_LIMIT,
    MIN_TRADE_USD_LIMIT,
    Portfolio,
    Profile,
    RebalanceRun,
)

MAX_CASH_USD = 1e12
MAX_KEEP_TICKERS = 50
MAX_TRADES = 1000
MAX_FILL_PRICE_USD = float(MAX_FILL_PRICE)


# --- JSON fields that take only the JSON type the schema names ------------------------------------
# DRF's fields coerce (`"12"` and `false` become numbers, `1` becomes `true`, `123` a string) and trim
# before checking the length; an API client sending the wrong type has a bug it should hear about.


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


# What `StrictTickerField` accepts, for the schema: a class share in any spelling (BRK.B, brk/b, BRK B) or
# letters, digits, "." and "-" starting and ending with a letter or digit. A test checks the two agree.
TICKER_SPELLING = r"^(?:[A-Za-z]{1,6}[./ ][A-Za-z]|[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,22}[A-Za-z0-9])?)$"


@extend_schema_field({"type": "string", "pattern": TICKER_SPELLING, "maxLength": TICKER_MAX_LEN})
class StrictTickerField(StrictCharField):
    """A ticker in any spelling a person writes (`brk.b`), returned in the one stored form (`BRK-B`)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=TICKER_MAX_LEN, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        if text != text.strip():
            raise serializers.ValidationError("no spaces around a ticker")
        if not text.isascii():
            raise serializers.ValidationError("a ticker is written in ASCII letters and digits")
        try:
            return ticker_normalize(text)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


# --- portfolios ----------------------------------------------------------------------------------


class PortfolioSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Portfolio
        fields = ["id", "name", "profile"]
        read_only_fields = fields


def _fractions(keys: tuple[str, ...]) -> dict:
    return {"type": "object", "properties": {k: {"type": "number", "minimum": 0, "maximum": 1} for k in keys},
            "required": list(keys), "additionalProperties": False}


_FUNDS = {"type": "object", "minProperties": 1, "maxProperties": 12,
          "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}}
_GICS = ("Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials",
         "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities")
TARGET_SCHEMA = {
    "description": (
        "The portfolio's target. kind thesis (the dated views, default), neutral (the neutral market mix) or "
        "custom: mix {stocks, bonds, cash} (fractions summing to 1), funds {stocks, bonds} (menu funds of that "
        "class with their share of the sleeve, summing to 1), sectors {GICS sector: tilt, -0.5..0.5 of "
        "equity}, size {large, mid, small} (fractions summing to 1). The sums and the menu are checked by the "
        "server (400 naming the field)."
    ),
    "oneOf": [
        {"type": "object", "properties": {"kind": {"type": "string", "enum": [kind]}}, "required": ["kind"],
         "additionalProperties": False}
        for kind in ("thesis", "neutral")
    ] + [{
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["custom"]},
            "mix": _fractions(("stocks", "bonds", "cash")),
            "funds": {"type": "object", "properties": {"stocks": _FUNDS, "bonds": _FUNDS},
                      "additionalProperties": False},
            "sectors": {"type": "object", "additionalProperties": False,
                        "properties": {g: {"type": "number", "minimum": -0.5, "maximum": 0.5} for g in _GICS}},
            "size": _fractions(("large", "mid", "small")),
        },
        "required": ["kind", "mix"],
        "additionalProperties": False,
        "example": {"kind": "custom", "mix": {"stocks": 0.6, "bonds": 0.35, "cash": 0.05},
                    "funds": {"stocks": {"VTI": 0.8, "VXUS": 0.2}, "bonds": {"BND": 1.0}}},
    }],
}
BANDS_SCHEMA = {
    "type": "object",
    "description": "Drift bands: a sleeve drifted when |current - target| > min(absolute, relative x target).",
    "properties": {"absolute": {"type": "number", "minimum": 0.005, "maximum": 0.5, "example": 0.05},
                   "relative": {"type": "number", "minimum": 0.01, "maximum": 1, "example": 0.25}},
    "required": ["absolute", "relative"],
    "additionalProperties": False,
}


@extend_schema_field(TARGET_SCHEMA)
class TargetField(serializers.JSONField):
    """A target object, validated against the menu (portfolios.targets)."""

    def to_internal_value(self, data):
        from portfolios.drift.views import menu_classes
        from portfolios.targets import TargetInvalid, target_validate

        try:
            return target_validate(data, menu=menu_classes())
        except TargetInvalid as exc:
            raise serializers.ValidationError([f"{k}: {v}" for k, v in exc.errors.items()]) from None


@extend_schema_field(BANDS_SCHEMA)
class BandsField(serializers.JSONField):
    def to_internal_value(self, data):
        from portfolios.targets import TargetInvalid, bands_validate

        try:
            return bands_validate(data)
        except TargetInvalid as exc:
            raise serializers.ValidationError([f"{k}: {v}" for k, v in exc.errors.items()]) from None


# --- the plan's own limits: portfolio settings (PATCH) and one run's options (rebalance) -------------

TAX_BUDGET_HELP = ("Estimated tax a plan may realise, fraction of value per calendar year, net of losses and of the "
                   "tax executed plans already realised this year: 0.01 = 1% (default), 0 = no net gains, "
                   "null = no limit")
MAX_FUNDS_HELP = f"Most distinct funds one plan buys, 1 to {MAX_FUNDS_LIMIT} (default 6; null = no cap)"
MIN_TRADE_USD_HELP = ("Smallest order in USD (default 250); the larger of this and min_trade_fraction of the value "
                      "applies")
MIN_TRADE_FRACTION_HELP = ("Smallest order as a fraction of the portfolio's value (default 0.0025 = 0.25%); the larger "
                           "of this and min_trade_usd applies")


class PlanLimitsSerializer(serializers.Serializer):
    """The plan's own limits, each optional: an omitted one keeps the portfolio's setting."""

    tax_budget = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0,
                                  help_text=TAX_BUDGET_HELP)
    max_funds = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_FUNDS_LIMIT,
                                   help_text=MAX_FUNDS_HELP)
    min_trade_usd = StrictFloatField(required=False, min_value=0.0, max_value=float(MIN_TRADE_USD_LIMIT),
                                     help_text=MIN_TRADE_USD_HELP)
    min_trade_fraction = StrictFloatField(required=False, min_value=0.0, max_value=MIN_TRADE_FRACTION_LIMIT,
                                          help_text=MIN_TRADE_FRACTION_HELP)


class PortfolioWriteSerializer(PlanLimitsSerializer):
    """Body of `POST /api/portfolios/` (name required) and `PATCH /api/portfolios/{id}/` (any subset)."""

    name = StrictCharField(
        max_length=100,
        validators=[RegexValidator(r"^[^\x00]*[^\s\x00][^\x00]*$", "Give the portfolio a name (not only spaces).")],
    )
    profile = serializers.ChoiceField(choices=Profile.choices, default=Profile.MODERATE)
    target = TargetField(required=False)
    bands = BandsField(required=False)


class HoldingSerializer(serializers.Serializer):
    """One lot of a security in an account (a ticker bought at several times may have several lots)."""

    ticker = serializers.CharField()
    account = serializers.CharField(help_text="Account name")
    shares = serializers.FloatField()
    cost_basis = serializers.FloatField(allow_null=True, help_text="Total cost of the lot, USD (null: unknown)")
    price = serializers.FloatField(allow_null=True, help_text="Latest close, USD (null: not priced)")
    value = serializers.FloatField(allow_null=True, help_text="shares x price, USD (null: not priced)")


class PortfolioDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    profile = serializers.ChoiceField(choices=Profile.choices)
    value = serializers.FloatField(help_text="Priced positions plus account cash, USD")
    cash = serializers.FloatField(help_text="Cash held in the accounts, USD")
    holdings = HoldingSerializer(many=True)
    target = TargetField()
    bands = BandsField()
    tax_budget = serializers.FloatField(allow_null=True, help_text=TAX_BUDGET_HELP)
    max_funds = serializers.IntegerField(allow_null=True, help_text=MAX_FUNDS_HELP)
    min_trade_usd = serializers.FloatField(help_text=MIN_TRADE_USD_HELP)
    min_trade_fraction = serializers.FloatField(help_text=MIN_TRADE_FRACTION_HELP)


# --- import --------------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file part of a multipart request (documented as binary, not as a URL)."""


class ImportRequestSerializer(serializers.Serializer):
    file = UploadField(
        allow_empty_file=True, help_text="The positions file your broker exports, or a ticker,shares[,cost_basis] CSV"
    )
    mode = serializers.ChoiceField(
        choices=[("replace", "replace"), ("merge", "merge")],
        default="replace",
        help_text="replace: the file's accounts replace their current holdings; merge: add to them",
    )

    def validate_file(self, upload):
        # Refused before reading it into memory; the importer applies the same limit to what it reads.
        limit = settings.IMPORT_MAX_BYTES
        if upload.size > limit:
            raise serializers.ValidationError(
                f"the file is {upload.size:,} bytes; the limit is {limit:,} bytes"
            )
        return upload


class ImportResultSerializer(serializers.Serializer):
    holdings = serializers.IntegerField(help_text="Holdings (lots) written")
    accounts = serializers.IntegerField(help_text="Accounts the file touched")
    warnings = serializers.ListField(child=serializers.CharField())


class ImportProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True, help_text="1-based line of the file (null: the whole request)")
    field = serializers.CharField(allow_blank=True, help_text="Column or form field at fault")
    message = serializers.CharField()


class ImportErrorsSerializer(serializers.Serializer):
    errors = ImportProblemSerializer(many=True)


# --- rebalance runs ------------------------------------------------------------------------------


class RebalanceRequestSerializer(PlanLimitsSerializer):
    """Options for one run; an omitted option takes the portfolio's current setting."""

    profile = serializers.ChoiceField(choices=Profile.choices, required=False)
    cash = StrictFloatField(
        required=False, min_value=-MAX_CASH_USD, max_value=MAX_CASH_USD,
        help_text="Cash to add (positive) or withdraw (negative), USD",
    )
    buy_only = StrictBooleanField(required=False, help_text="Never sell; only buy with the available cash")
    keep = serializers.ListField(
        child=StrictTickerField(),
        required=False, max_length=MAX_KEEP_TICKERS,
        help_text="Tickers never to sell; class shares in any spelling (BRK.B, BRK/B, BRK-B)",
    )
    fractional = StrictBooleanField(required=False, help_text="Allow fractional shares")
    max_turnover = StrictFloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0,
        help_text="Largest fraction of value to trade (null: the profile's limit)",
    )
    use_views = StrictBooleanField(required=False, help_text="Apply the dated investment views")

    def validate_keep(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class RunAcceptedSerializer(serializers.Serializer):
    run = serializers.IntegerField(help_text="Poll GET /api/runs/{run}/")
    status = serializers.ChoiceField(choices=RebalanceRun.Status.choices)
    url = serializers.CharField()


_NUM = {"type": "number"}
_FRACTIONS = {"type": "object", "additionalProperties": _NUM}
_SNAPSHOT = {
    "type": "object",
    "description": "Exposures of the current (before) or proposed (after) portfolio",
    "properties": {
        "weights": {**_FRACTIONS, "description": "ticker: fraction of total value, cash as CASH"},
        "sectors": {**_FRACTIONS, "description": "GICS look-through, fractions of the stock part"},
        "size": {**_FRACTIONS, "description": "large/mid/small, fractions of the stock part"},
        "volatility": {"type": "number", "description": "Annualised, on the optimizer's (shrunk) risk model"},
        "volatility_sample": {"type": "number", "nullable": True,
                              "description": "Annualised, on the plain sample covariance of the last 3 years "
                                             "(null or absent: not measured, e.g. a run from before it existed)"},
    },
    "additionalProperties": {},
}
RESULT_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": (
        "The CLI JSON document (DESIGN.md) once status is done, null before. Keys are only ever added: a run "
        "computed before a key existed lacks it (orders, funds_bought, notes, tradeoffs, tax_budget, tax_spent_usd, "
        "volatility_sample came with issue 15)."
    ),
    "properties": {
        "as_of": {"type": "string", "format": "date"},
        "profile": {"type": "string"},
        "status": {"type": "string", "description": "optimal | relaxed | partial"},
        "value": {"type": "number", "description": "Portfolio value after the cash change, USD"},
        "summary": {"type": "string"},
        "trades": {"type": "array", "items": {"type": "object", "additionalProperties": {}, "properties": {
            "ticker": {"type": "string"}, "account": {"type": "string"},
            "action": {"type": "string", "enum": ["buy", "sell"]}, "shares": _NUM, "price": _NUM,
            "amount": _NUM, "reason": {"type": "string"}, "est_tax": _NUM, "est_cost": _NUM}}},
        "before": _SNAPSHOT,
        "after": _SNAPSHOT,
        "warnings": {"type": "array", "items": {"type": "string"}},
        "est_taxes": {"type": "number", "description": "Estimated tax of the plan, USD, net of harvested losses"},
        "est_costs": {"type": "number", "description": "Estimated trading costs, USD"},
        "orders": {"type": "integer", "description": "Number of orders (trades)"},
        "funds_bought": {"type": "integer", "description": "Distinct tickers bought"},
        "notes": {"type": "array", "items": {"type": "string"},
                  "description": "The planner's notes in plain words (nothing to do, a lot waited for, a loss "
                                 "harvested, why bonds went to an IRA)"},
        "tradeoffs": {"type": "array", "description": "What other yearly tax budgets would buy (empty unless the "
                                                      "budget binds)",
                      "items": {"type": "object", "additionalProperties": {}, "properties": {
                          "budget": {"type": "number", "nullable": True,
                                     "description": "Fraction of value per year (null: no limit)"},
                          "est_taxes": {"type": "number", "description": "USD"},
                          "volatility": {"type": "number", "description": "After, annualised"},
                          "limits_met": {"type": "integer"}, "limits_total": {"type": "integer"},
                          "current": {"type": "boolean", "description": "The plan's own budget"}}}},
        "tax_budget": {"type": "number", "nullable": True,
                       "description": "The budget the plan was held to, fraction of value per year (null: no limit)"},
        "tax_spent_usd": {"type": "number",
                          "description": "Tax executed plans already realised this calendar year, taken off the "
                                         "budget, USD"},
    },
    "additionalProperties": {},
}


class RunSerializer(serializers.ModelSerializer):
    inputs = serializers.SerializerMethodField(
        help_text="Options the run uses (profile, cash, buy_only, keep, fractional, max_turnover, use_views, "
        "tax_budget, tax_spent_usd, max_funds, min_trade_usd, min_trade_fraction; a run from before an option "
        "existed lacks it)"
    )
    result = serializers.SerializerMethodField()
    error = serializers.CharField(read_only=True, help_text="Why the run failed (empty unless status is failed)")

    class Meta:
        model = RebalanceRun
        fields = [
            "id", "portfolio", "status", "trigger", "profile", "inputs", "result", "error",
            "prices_as_of", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_inputs(self, run: RebalanceRun) -> dict:
        return run.inputs or {}

    @extend_schema_field(RESULT_SCHEMA)
    def get_result(self, run: RebalanceRun) -> dict | None:
        return run.result if run.status == RebalanceRun.Status.DONE else None


# --- executed plans ------------------------------------------------------------------------------


@extend_schema_field({
    "type": "object", "description": "{trade index: fill price in USD}; a trade not listed filled at the plan's price",
    "additionalProperties": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_FILL_PRICE_USD},
})
class FillPricesField(serializers.DictField):
    """`{"0": 181.5}` -> `{0: Decimal("181.5")}`: keys are trade indexes, values prices above 0."""

    def __init__(self, **kwargs):
        super().__init__(child=StrictFloatField(max_value=MAX_FILL_PRICE_USD), **kwargs)

    def to_internal_value(self, data):
        prices = super().to_internal_value(data)
        out, errors = {}, {}
        for key, price in prices.items():
            index = id_parse(key) if key != "0" else 0
            if index is None:
                errors[key] = ["the key must be a trade index (0, 1, 2, …)"]
            elif not price > 0:
                errors[key] = ["a fill price is above 0"]
            else:
                out[index] = Decimal(str(price))
        if errors:
            raise serializers.ValidationError(errors)
        return out


class ExecutedRequestSerializer(serializers.Serializer):
    """Body of `POST /api/runs/{id}/executed/`."""

    trades = serializers.ListField(
        child=StrictIntegerField(min_value=0), required=False, allow_empty=False, max_length=MAX_TRADES,
        help_text="Indexes into the run's result.trades of the trades you made (omitted: every trade not marked yet)",
    )
    prices = FillPricesField(required=False)

    def validate(self, data: dict) -> dict:
        prices, trades = data.get("prices") or {}, data.get("trades")
        stray = sorted(set(prices) - set(trades)) if trades is not None else []
        if stray:
            raise serializers.ValidationError({"prices": [f"trade {i} is not in trades" for i in stray]})
        return data

    def selections(self) -> list[ExecutedSelection] | None:
        """The chosen trades with their fill prices; None: every open trade (`fill_prices()` then applies)."""
        trades = self.validated_data.get("trades")
        if trades is None:
            return None
        return [ExecutedSelection(index=i, fill_price=self.fill_prices().get(i)) for i in trades]

    def fill_prices(self) -> dict[int, Decimal]:
        return self.validated_data.get("prices") or {}


class ExecutedTradeSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Index in the run's result.trades")
    ticker = serializers.CharField()
    account = serializers.CharField()
    action = serializers.ChoiceField(choices=[("buy", "buy"), ("sell", "sell")])
    shares = serializers.FloatField()
    plan_price = serializers.FloatField()
    fill_price = serializers.FloatField()
    amount = serializers.FloatField(help_text="shares x fill price, USD")
    lots = serializers.ListField(child=serializers.DictField(), help_text="Lots sold from, or the lot bought")


class ExecutedResultSerializer(PortfolioDetailSerializer):
    executed_plan = serializers.IntegerField(help_text="Id of the audit record")
    executed = ExecutedTradeSerializer(many=True)
    cash_change = serializers.FloatField(help_text="The plan's deposit (+) or withdrawal (-) booked now, USD")
    run = serializers.IntegerField(help_text="The run requested from the new holdings: poll GET /api/runs/{run}/")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
