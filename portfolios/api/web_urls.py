from django.urls import path

from portfolios.api import web_views

urlpatterns = [
    path("tokens/", web_views.api_tokens, name="api_tokens"),
]
