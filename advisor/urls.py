from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# The admin has no login form of its own: /admin/login/ sends everyone to the site's sign-in page,
# whose rate limits (shared by every process through the Redis cache) then apply to staff too.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", include("portfolios.api.urls")),
    path("settings/", include("portfolios.api.web_urls")),
    path("", include("portfolios.urls")),
]
