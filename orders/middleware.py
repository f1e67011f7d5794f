"""Refuse an oversized request body before anything reads it."""

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
