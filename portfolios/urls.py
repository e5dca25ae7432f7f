from django.urls import include, path

from portfolios import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("health/", views.health, name="health"),
    path("portfolios/", views.portfolio_list, name="portfolio_list"),
    path("portfolios/new/", views.portfolio_create, name="portfolio_create"),
    path("", include("portfolios.holdings.urls")),
    path("", include("portfolios.recommendations.urls")),
    path("", include("portfolios.drift.urls")),
]
