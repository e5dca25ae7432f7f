from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    verbose_name = "Portfolios"

    def ready(self) -> None:
        from portfolios.api import signals  # noqa: F401  (connects the password-change hook)
