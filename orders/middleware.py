"""Security headers on every response, and an oversized request body refused before
anything reads it."""

from django.conf import settings
from django.http import JsonResponse


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"success": False, "error": "Invalid Content-Length header."}, status=400)
        if length > self.limit:
            return JsonResponse(
                {"success": False, "error": f"Request body too large: at most {self.limit} bytes (MAX_REQUEST_BYTES)."},
                status=413,
            )
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """The Content-Security-Policy (settings.CONTENT_SECURITY_POLICY) on every response,
    including those other middleware answer early (a 413): outermost in MIDDLEWARE. A
    view that sets its own keeps it. (X-Frame-Options is Django's clickjacking
    middleware, placed right inside this one for the same reason.)"""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
