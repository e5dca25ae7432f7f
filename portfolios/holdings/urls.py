from django.urls import path

from portfolios.holdings import views

urlpatterns = [
    path("portfolios/<int:portfolio_id>/holdings/", views.holdings, name="holdings"),
    path("portfolios/<int:portfolio_id>/holdings.csv", views.holdings_export, name="holdings_export"),
    path("portfolios/<int:portfolio_id>/import/", views.holdings_upload, name="holdings_upload"),
    path("portfolios/<int:portfolio_id>/import/preview/", views.holdings_import_preview,
         name="holdings_import_preview"),
    path("portfolios/<int:portfolio_id>/import/confirm/", views.holdings_import_confirm,
         name="holdings_import_confirm"),
    path("portfolios/<int:portfolio_id>/runs/<int:run_id>/executed/", views.run_executed, name="run_executed"),
    path("portfolios/<int:portfolio_id>/holdings/add/", views.holding_add, name="holding_add"),
    path("holdings/<int:holding_id>/edit/", views.holding_edit, name="holding_edit"),
    path("holdings/<int:holding_id>/delete/", views.holding_delete, name="holding_delete"),
    path("portfolios/<int:portfolio_id>/accounts/add/", views.account_add, name="account_add"),
    path("portfolios/accounts/<int:account_id>/edit/", views.account_edit, name="account_edit"),
    path("portfolios/accounts/<int:account_id>/delete/", views.account_delete, name="account_delete"),
]
