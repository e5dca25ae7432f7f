from django.urls import path

from portfolios.recommendations import views

urlpatterns = [
    path("portfolios/<int:portfolio_id>/", views.portfolio_detail, name="portfolio_detail"),
]
