"""Every API error has the same shape: {"success": false, "error": "...", "errors": {...}}.

Services raise domain errors without HTTP codes; this module alone decides which code
each kind of refusal gets. Views let those errors through, and DRF hands them to
`exception_handler` below."""

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orders import selectors
from orders.services import errors
from orders.services.exports import ExportTooLarge

# The kind of refusal decides the status code.
STATUS_CODES: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.Invalid, status.HTTP_400_BAD_REQUEST),
    (errors.Forbidden, status.HTTP_403_FORBIDDEN),
    (errors.NotFound, status.HTTP_404_NOT_FOUND),
    (errors.Conflict, status.HTTP_409_CONFLICT),
)


def error_response(message: str, errors=None, *, status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    body = {"success": False, "error": message}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=status_code)


def domain_error_response(exc: Exception) -> Response | None:
    """The answer to a service's refusal, or None when `exc` is not one."""
    code = next((code for kind, code in STATUS_CODES if isinstance(exc, kind)), None)
    if code is None:
        return None
    return error_response(exc.message, exc.errors, status_code=code)


class InvalidQuery(Exception):
    """Query parameters that do not validate: `errors` per parameter."""

    def __init__(self, errors):
        super().__init__("Invalid query")
        self.errors = errors


def query_error_response(exc: Exception) -> Response | None:
    """The answer to a read the query parameters make impossible, or None: 400 per
    parameter, 403 for an account the user may not see, 400 for an export too large."""
    if isinstance(exc, InvalidQuery):
        return error_response("Invalid query", exc.errors)
    if isinstance(exc, selectors.AccountHidden):
        return error_response(exc.message, status_code=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, selectors.QueryError):
        return error_response("Invalid query", {exc.field: [exc.message]})
    if isinstance(exc, ExportTooLarge):
        return error_response(exc.title, {"non_field_errors": [str(exc)]})
    return None


def exception_handler(exc, context):
    if (refused := domain_error_response(exc) or query_error_response(exc)) is not None:
        return refused
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"success": False, "error": "Invalid request", "errors": response.data}
    else:
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        response.data = {"success": False, "error": str(detail)}
    return response
