"""Data model: market data (securities, prices, look-through), holdings, and rebalance runs.

Business logic lives in services/selectors; models carry fields, constraints and small
domain helpers only.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from engine.tickers import ticker_key

# --- market data -------------------------------------------------------------------------------


class Security(models.Model):
    class Kind(models.TextChoices):
        STOCK = "stock", "Stock"
        ETF = "etf", "ETF"
        FUND = "fund", "Mutual fund"
        OPTION = "option", "Option"
        BOND = "bond", "Bond or T-bill"
        UNKNOWN = "unknown", "Unknown"

    class Size(models.TextChoices):
        LARGE = "large", "Large cap"
        MID = "mid", "Mid cap"
        SMALL = "small", "Small cap"
        TOTAL = "total", "Total market"
        NA = "n/a", "Not applicable"
        UNKNOWN = "", "Unknown"

    ticker = models.CharField(max_length=24, unique=True, help_text="Yahoo form, e.g. BRK-B")
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.UNKNOWN)
    asset_class = models.CharField(max_length=20, blank=True, help_text="equity, bond, commodity, cash")
    sector = models.CharField(max_length=40, blank=True, help_text="GICS sector (stocks only)")
    size = models.CharField(max_length=8, choices=Size.choices, blank=True, default="")
    region = models.CharField(max_length=20, blank=True)
    is_menu = models.BooleanField(
        default=False, help_text="Offered by the optimizer as a diversifier to buy"
    )
    priced = models.BooleanField(default=False)
    last_price_date = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=20, blank=True, help_text="bundled, yfinance, csv, import")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ticker"]
        verbose_name_plural = "securities"

    def __str__(self) -> str:
        return self.ticker


class Price(models.Model):
    """Daily split- and dividend-adjusted close, in USD."""

    security = models.ForeignKey(Security, on_delete=models.CASCADE, related_name="prices")
    date = models.DateField()
    close = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["security", "date"], name="price_unique_security_date")
        ]
        indexes = [models.Index(fields=["date"], name="price_date_idx")]

    def __str__(self) -> str:
        return f"{self.security_id} {self.date} {self.close}"


class EtfSectorWeight(models.Model):
    """GICS sector look-through of an equity ETF; weights sum to 1 per ETF."""

    etf = models.ForeignKey(Security, on_delete=models.CASCADE, related_name="sector_weights")
    sector = models.CharField(max_length=40)
    weight = models.FloatField()
    source = models.CharField(max_length=120, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["etf", "sector"], name="etfsector_unique_etf_sector")
        ]

    def __str__(self) -> str:
        return f"{self.etf_id} {self.sector} {self.weight:.4f}"


class EtfHolding(models.Model):
    """Single-name holding of a fund, for overlap look-through. `weight` is a fraction (0..1)."""

    etf = models.ForeignKey(Security, on_delete=models.CASCADE, related_name="fund_holdings")
    ticker = models.CharField(max_length=24)
    name = models.CharField(max_length=200, blank=True)
    sector = models.CharField(max_length=40, blank=True)
    weight = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["etf", "ticker"], name="etfholding_unique_etf_ticker")
        ]

    def __str__(self) -> str:
        return f"{self.etf_id} {self.ticker} {self.weight:.4f}"


class PriceRefresh(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another refresh held the lock)"

    provider = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    tickers_asked = models.PositiveIntegerField(default=0)
    tickers_updated = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=dict, blank=True, help_text="{ticker: reason}")
    as_of = models.DateField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.provider} refresh {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


# --- holdings ------------------------------------------------------------------------------------


class Profile(models.TextChoices):
    CONSERVATIVE = "conservative", "Conservative"
    MODERATE = "moderate", "Moderate"
    AGGRESSIVE = "aggressive", "Aggressive"


# Bounds of the plan's own limits (Portfolio.max_funds, min_trade_usd, min_trade_fraction), the same in the
# options form, the API and the CLI.
MAX_FUNDS_LIMIT = 50
MIN_TRADE_USD_LIMIT = 100_000
MIN_TRADE_FRACTION_LIMIT = 0.10


def default_target() -> dict:
    return {"kind": "thesis"}


def default_bands() -> dict:
    return {"absolute": 0.05, "relative": 0.25}


class Portfolio(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios"
    )
    name = models.CharField(max_length=100)
    profile = models.CharField(max_length=12, choices=Profile.choices, default=Profile.MODERATE)
    # Current rebalance options (each run records the options it actually used).
    cash_change_usd = models.DecimalField(
        max_digits=18, decimal_places=2, default=Decimal("0"),
        help_text="Cash to add (positive) or withdraw (negative) when rebalancing",
    )
    buy_only = models.BooleanField(default=False)
    keep_tickers = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated tickers never to sell"
    )
    fractional = models.BooleanField(default=False)
    max_turnover = models.FloatField(
        null=True, blank=True, help_text="Fraction of value; blank uses the profile's limit"
    )
    use_views = models.BooleanField(default=True, help_text="Apply the dated investment views")
    # A planner's limits on the plan itself (engine.types.Options of the same names).
    tax_budget = models.FloatField(
        null=True, blank=True, default=0.01,
        help_text="Estimated tax a plan may realise, fraction of value per calendar year (0: no net gains; "
        "blank: no limit)",
    )
    max_funds = models.PositiveSmallIntegerField(
        null=True, blank=True, default=6, help_text="Most distinct funds one plan buys (blank: no cap)"
    )
    min_trade_usd = models.FloatField(default=250.0, help_text="Smallest order, USD (the larger of the two applies)")
    min_trade_fraction = models.FloatField(
        default=0.0025, help_text="Smallest order, fraction of value (the larger of the two applies)"
    )
    # The target: {"kind": "thesis"} (default; the views on or off follow `use_views`), {"kind": "neutral"}
    # or a custom mix (validated by portfolios.targets.target_validate). Bands: drift tolerance.
    target = models.JSONField(default=default_target, blank=True, help_text="The portfolio's target (see targets.py)")
    bands = models.JSONField(default=default_bands, blank=True, help_text='{"absolute": 0.05, "relative": 0.25}')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def keep_list(self) -> list[str]:
        return list(dict.fromkeys(ticker_key(t) for t in self.keep_tickers.split(",") if t.strip()))


class Account(models.Model):
    class Type(models.TextChoices):
        TAXABLE = "taxable", "Taxable"
        TRADITIONAL_IRA = "traditional_ira", "Traditional IRA"
        ROTH_IRA = "roth_ira", "Roth IRA"
        K401 = "401k", "401(k)"
        OTHER = "other", "Other"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="accounts")
    name = models.CharField(max_length=100)
    broker = models.CharField(max_length=40, blank=True)
    number_masked = models.CharField(max_length=20, blank=True, help_text="e.g. ...1234")
    account_type = models.CharField(max_length=16, choices=Type.choices, default=Type.TAXABLE)
    cash_usd = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "name"], name="account_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_taxable(self) -> bool:
        return self.account_type == self.Type.TAXABLE


class Holding(models.Model):
    """One lot of one security in one account (several lots of a ticker may exist)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="holdings")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="holdings")
    shares = models.DecimalField(max_digits=20, decimal_places=6)
    cost_basis_usd = models.DecimalField(
        max_digits=18, decimal_places=2, null=True, blank=True, help_text="Total cost of the lot"
    )
    acquired_on = models.DateField(null=True, blank=True)
    # What the broker file said of this lot (USD): kept to value holdings the market data cannot price.
    file_price_usd = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True, help_text="Price per share the file gave"
    )
    file_value_usd = models.DecimalField(
        max_digits=18, decimal_places=2, null=True, blank=True, help_text="Market value the file gave"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id", "security__ticker", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(shares__gte=0), name="holding_shares_nonnegative")
        ]

    def __str__(self) -> str:
        return f"{self.shares} {self.security.ticker}"


# --- recommendations ---------------------------------------------------------------------------


class RebalanceRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Requested"
        IMPORT = "import", "Holdings imported"
        EDIT = "edit", "Holdings edited"
        OPTIONS = "options", "Options changed"
        PRICES = "prices", "Prices refreshed"
        API = "api", "API request"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.MANUAL)
    profile = models.CharField(max_length=12, choices=Profile.choices)
    inputs = models.JSONField(default=dict, help_text="Options the run used")
    prices_as_of = models.DateField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="The CLI JSON document")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    task_id = models.CharField(
        max_length=64, blank=True, help_text="Celery task that claimed the run (a redelivery may re-claim it)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When a task for the run last reached the broker")
    queue_failed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the broker last refused the run's task (Redis down); the sweep queues it"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A running run belongs to its worker until then; the task renews it while "
        "it computes, the sweep re-queues the run once it lapses"
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["portfolio"],
                condition=Q(status="pending"),
                name="run_one_pending_per_portfolio",
            )
        ]
        indexes = [
            models.Index(fields=["portfolio", "status"], name="run_portfolio_status_idx"),
            # the sweep's scan: only the few active runs, however many finished ones there are
            models.Index(fields=["status", "created_at"], condition=Q(status__in=["pending", "running"]),
                         name="run_active_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


class ExecutedPlan(models.Model):
    """An audit record: the trades of a run the user said they made at their broker, and what it did.

    `trades` holds one entry per executed trade: `{index, ticker, account, action, shares, plan_price,
    fill_price, amount, lots}`; a sell's `lots` lists the lots it took (`holding`, `shares`, `cost_basis`),
    a buy's the lot it created. A run's trade index appears in at most one executed plan.
    """

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="executed_plans")
    run = models.ForeignKey(
        RebalanceRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="executed_plans"
    )
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    executed_at = models.DateTimeField(auto_now_add=True)
    trades = models.JSONField(default=list)
    cash_change_usd = models.DecimalField(
        max_digits=18, decimal_places=2, default=Decimal("0"),
        help_text="The plan's deposit (+) or withdrawal (-), booked with its first execution",
    )

    class Meta:
        ordering = ["-executed_at", "-id"]

    def __str__(self) -> str:
        return f"executed plan {self.pk} of run {self.run_id}"

    @property
    def trade_indexes(self) -> list[int]:
        return [int(t["index"]) for t in self.trades]


# --- drift ----------------------------------------------------------------------------------------


class DriftCheck(models.Model):
    """One drift measurement of one portfolio (after a price refresh or on demand)."""

    class Status(models.TextChoices):
        IN_BAND = "in_band", "In band"
        DRIFTED = "drifted", "Drifted"
        BREAKS_LIMIT = "breaks_limit", "Breaks a limit"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="drift_checks")
    checked_at = models.DateTimeField(default=timezone.now)
    prices_as_of = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    largest = models.FloatField(help_text="Largest distance of a sleeve from its target, fraction")
    largest_label = models.CharField(max_length=80, blank=True)
    since_plan = models.FloatField(null=True, blank=True, help_text="Largest move since the last suggestion")
    items = models.JSONField(default=list, blank=True, help_text="Out-of-band sleeves")
    limits = models.JSONField(default=list, blank=True, help_text="Broken profile limits")
    plan_run = models.ForeignKey(
        "RebalanceRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The suggestion the drift is measured since",
    )
    recompute_run = models.ForeignKey(
        "RebalanceRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The recompute this check requested",
    )
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When the owner was mailed about it")

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["portfolio", "-checked_at"], name="driftcheck_portfolio_idx")]

    def __str__(self) -> str:
        return f"{self.portfolio_id} {self.status} {self.largest:.3f}"


class DriftAlertSetting(models.Model):
    """A user's drift e-mail choice (no row: the default, mail when a portfolio drifts)."""

    class Mode(models.TextChoices):
        OFF = "off", "Off"
        DRIFT = "drift", "When a portfolio drifts"
        WEEKLY = "weekly", "Weekly digest"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drift_alerts")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.DRIFT)
    digest_sent_at = models.DateTimeField(null=True, blank=True, help_text="Last weekly digest")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id} {self.mode}"
