from django.urls import path

from portfolios.drift import views

urlpatterns = [
    path("portfolios/<int:portfolio_id>/target/", views.target_edit, name="portfolio_target"),
    path("settings/alerts/", views.alert_settings, name="drift_alerts"),
    path("alerts/unsubscribe/<str:token>/", views.unsubscribe, name="drift_unsubscribe"),
]
