from django.urls import path

from portfolios.holdings import views

urlpatterns = [
    path("portfolios/<int:portfolio_id>/holdings/", views.holdings, name="holdings"),
]
