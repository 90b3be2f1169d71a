from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from health_check.views import HealthCheckView
from redis.asyncio import Redis as AsyncRedis

from accounts import views as account_views
from finanzapro.celery import app as celery_app

# /health/ for monitoring: the database, the cache, file storage, a Celery worker answering
# through the broker, the SMTP server taking a connection and, where the broker or the cache
# is Redis (tests, production; development needs none), Redis itself.
HEALTH_CHECKS: list[str | tuple[str, dict[str, Any]]] = [
    "health_check.checks.Database",
    "health_check.checks.Cache",
    "health_check.checks.Storage",
    # limit=1: answer as soon as one worker replies, instead of waiting out the timeout.
    ("health_check.contrib.celery.Ping", {"app": celery_app, "timeout": timedelta(seconds=2), "limit": 1}),
    # Opens (and closes) a connection with the mailer the invoice emails use, with its settings.
    ("health_check.checks.Mail", {"alias": "default", "timeout": timedelta(seconds=5)}),
]
if (
    settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    or "redis" in settings.CACHES["default"]["BACKEND"].lower()
):
    HEALTH_CHECKS.append(
        ("health_check.contrib.redis.Redis", {"client_factory": partial(AsyncRedis.from_url, settings.REDIS_URL)})
    )

admin.site.site_header = _("FinanzaPro support")
admin.site.site_title = _("FinanzaPro support")
admin.site.index_title = _("Administration")

urlpatterns = [
    path("", account_views.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("users/", include("accounts.urls")),
    path("stores/", include("stores.urls")),
    path("mail/", include("mailer.urls")),
    path("invoices/", include("invoices.urls")),
    path("health/", HealthCheckView.as_view(checks=HEALTH_CHECKS), name="health"),
    path("api/v1/", include("invoices.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
