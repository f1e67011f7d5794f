"""Every API error has the same shape: {"success": false, "error": "...", "errors": {...}}."""

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def error_response(message: str, errors=None, *, status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    body = {"success": False, "error": message}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=status_code)


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"success": False, "error": "Invalid request", "errors": response.data}
    else:
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        response.data = {"success": False, "error": str(detail)}
    return response
