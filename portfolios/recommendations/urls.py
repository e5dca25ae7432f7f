from django.urls import path

from portfolios.recommendations import views

urlpatterns = [
    path("portfolios/<int:portfolio_id>/", views.portfolio_detail, name="portfolio_detail"),
    path("portfolios/<int:portfolio_id>/status/", views.run_status, name="run_status"),
    path("portfolios/<int:portfolio_id>/options/", views.portfolio_options, name="portfolio_options"),
    path("portfolios/<int:portfolio_id>/recompute/", views.run_recompute, name="run_recompute"),
    path("portfolios/<int:portfolio_id>/trades/export.csv", views.trades_export, name="trades_export"),
    path("portfolios/<int:portfolio_id>/runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("portfolios/<int:portfolio_id>/runs/<int:run_id>/print/", views.run_print, name="run_print"),
]
