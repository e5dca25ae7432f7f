from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", include("portfolios.api.urls")),
    path("settings/", include("portfolios.api.web_urls")),
    path("", include("portfolios.urls")),
]
