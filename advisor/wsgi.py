import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
application = get_wsgi_application()

# Templates compiled and the page cache's code version read before the first request (in gunicorn's
# master with preload_app, so each worker starts warm: portfolios/recommendations/page_cache.py).
from portfolios.recommendations.page_cache import warm_up  # noqa: E402  (needs the app loaded)

warm_up()
