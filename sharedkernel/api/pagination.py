from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """{"count", "next", "previous", "results"}; ?page=2&page_size=100 (at most 500: larger is read as 500).

    A ``page_size`` that is not a whole number of at least 1 is a 400 naming it, not silently the
    default: a client asking for ``page_size=abc`` must learn its request was not understood."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        given = request.query_params.getlist(self.page_size_query_param)
        if not given:
            return self.page_size
        text = given[-1]
        if len(given) > 1 or not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise ValidationError(
                {self.page_size_query_param: [f"page_size is one whole number from 1 to {self.max_page_size}."]}
            )
        return min(int(text), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters
