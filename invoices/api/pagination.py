from typing import Any

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers, with the page's schema in OpenAPI 3.1 terms: DRF describes ``next``
    and ``previous`` with 3.0's ``nullable``, which a 3.1 (JSON Schema) validator ignores."""

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        for name in ("next", "previous"):
            field = response["properties"][name]
            if field.pop("nullable", False):
                field["type"] = [field["type"], "null"]
        return response
