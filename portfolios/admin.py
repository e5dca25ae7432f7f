from django.contrib import admin

from portfolios import models


@admin.register(models.Security)
class SecurityAdmin(admin.ModelAdmin):
    list_display = ["ticker", "name", "kind", "asset_class", "sector", "size", "is_menu", "priced", "last_price_date"]
    list_filter = ["kind", "asset_class", "size", "is_menu", "priced"]
    search_fields = ["ticker", "name"]


@admin.register(models.PriceRefresh)
class PriceRefreshAdmin(admin.ModelAdmin):
    list_display = ["started_at", "provider", "status", "tickers_asked", "tickers_updated", "rows_written", "as_of"]
    readonly_fields = [f.name for f in models.PriceRefresh._meta.fields]


class AccountInline(admin.TabularInline):
    model = models.Account
    extra = 0


@admin.register(models.Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "profile", "created_at"]
    search_fields = ["name", "owner__email"]
    inlines = [AccountInline]


@admin.register(models.Holding)
class HoldingAdmin(admin.ModelAdmin):
    list_display = ["security", "account", "shares", "cost_basis_usd"]
    raw_id_fields = ["account", "security"]


@admin.register(models.RebalanceRun)
class RebalanceRunAdmin(admin.ModelAdmin):
    list_display = ["id", "portfolio", "status", "trigger", "profile", "prices_as_of", "created_at", "duration_ms"]
    list_filter = ["status", "trigger"]
    raw_id_fields = ["portfolio"]


@admin.register(models.ExecutedPlan)
class ExecutedPlanAdmin(admin.ModelAdmin):
    """An audit trail: read-only."""

    list_display = ["id", "portfolio", "run", "executed_by", "executed_at", "cash_change_usd"]
    readonly_fields = [f.name for f in models.ExecutedPlan._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.DriftCheck)
class DriftCheckAdmin(admin.ModelAdmin):
    list_display = ["id", "portfolio", "status", "largest", "largest_label", "checked_at", "alerted_at"]
    list_filter = ["status"]
    raw_id_fields = ["portfolio", "plan_run", "recompute_run"]


@admin.register(models.DriftAlertSetting)
class DriftAlertSettingAdmin(admin.ModelAdmin):
    list_display = ["user", "mode", "digest_sent_at", "updated_at"]
    list_filter = ["mode"]
    raw_id_fields = ["user"]
