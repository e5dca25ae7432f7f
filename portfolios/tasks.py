"""Celery task registry: Celery's autodiscovery imports this module; each area keeps its own tasks."""

from portfolios.drift.tasks import *  # noqa: F403
from portfolios.marketdata.tasks import *  # noqa: F403
from portfolios.recommendations.tasks import *  # noqa: F403
