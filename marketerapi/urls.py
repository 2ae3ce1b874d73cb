from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process is up; /api/v1/status checks the services behind it."""
    return JsonResponse({"status": "ok"})


api_v1 = [
    path("", include("governance.api")),
    path("", include("audiences.api")),
    path("", include("integrations.api")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("", include("portal.urls")),
]

handler400 = "marketerapi.problems.handler400"
handler403 = "marketerapi.problems.handler403"
handler404 = "marketerapi.problems.handler404"
handler500 = "marketerapi.problems.handler500"
