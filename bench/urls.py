"""The product's URLs plus the baseline of bench_api_read: a bare Django view doing the
same one-profile query as GET /api/v1/profiles/{id}, without DRF, auth or policy."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from audiences.models import Profile
from marketerapi.urls import handler400, handler403, handler404, handler500
from marketerapi.urls import urlpatterns as product_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def bare_profile(request: HttpRequest, profile_id: int) -> JsonResponse:
    row = Profile.objects.filter(pk=profile_id).values().first()
    if row is None:
        return JsonResponse({"detail": "not found"}, status=404)
    return JsonResponse(row)


urlpatterns = [
    path("bench/bare-profile/<int:profile_id>", bare_profile, name="bench-bare-profile"),
    *product_urlpatterns,
]
