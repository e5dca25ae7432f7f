"""Page-number pagination that refuses a malformed `page` instead of silently showing page 1."""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

from portfolios.access import id_parse


class StrictPageNumberPagination(PageNumberPagination):
    last_page_strings = ()

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        page = id_parse(raw)
        if page is None:
            raise NotFound(f"Invalid page {raw[:20]!r}: give a whole number from 1.")
        return page
