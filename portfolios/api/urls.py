"""REST API routes, included at /api/ (DESIGN.md "REST API"). Everything here needs a signed-in user or a token,
the OpenAPI schema and its Swagger UI included."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

from portfolios.api import views

app_name = "api"

urlpatterns = [
    path("portfolios/", views.PortfolioListView.as_view(), name="portfolio-list"),
    path("portfolios/<int:pk>/", views.PortfolioDetailView.as_view(), name="portfolio-detail"),
    path("portfolios/<int:pk>/import/", views.PortfolioImportView.as_view(), name="portfolio-import"),
    path("portfolios/<int:pk>/rebalance/", views.PortfolioRebalanceView.as_view(), name="portfolio-rebalance"),
    path("portfolios/<int:pk>/trades.csv", views.PortfolioTradesView.as_view(), name="portfolio-trades"),
    path("runs/<int:pk>/", views.RunDetailView.as_view(), name="run-detail"),
    path("runs/<int:pk>/executed/", views.RunExecutedView.as_view(), name="run-executed"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path(
        "docs/",
        # The split view serves its start-up script as a file: no inline script, as the CSP requires.
        SpectacularSwaggerSplitView.as_view(url_name="api:schema", permission_classes=[IsAuthenticated]),
        name="docs",
    ),
    # Last: anything else under /api/ answers a JSON 404 (401 when anonymous), never an HTML page.
    re_path(r"^[\s\S]*$", views.ApiNotFoundView.as_view(), name="not-found"),  # any path, newlines too
]
