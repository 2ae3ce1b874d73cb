from pathlib import Path

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from audiences.api.exports import ExportFile
from marketerapi.problems import api_path_not_found

FAVICON = (Path(__file__).resolve().parent / "static" / "favicon.svg").read_bytes()


def favicon(request: HttpRequest) -> HttpResponse:
    """The icon every browser asks for at /favicon.ico (a 404 on every page otherwise)."""
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process is up; /api/v1/status checks the services behind it."""
    return JsonResponse({"status": "ok"})


api_v1 = [
    path("", include("governance.api")),
    path("", include("audiences.api")),
    path("", include("integrations.api")),
    path("", include("campaigns.api")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (?script), not inline, so
    # the page works under the Content-Security-Policy (script-src 'self').
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # Any other path under /api/ is a problem+json 404, whatever DEBUG says (with DEBUG=1 Django
    # would answer its HTML debug page, which an integrator's client cannot read).
    re_path(r"^api/", api_path_not_found, name="api-not-found"),
    path("admin/", admin.site.urls),
    # A signed export download link (audiences/api/exports.py): the signature is the credential.
    path("downloads/exports/<str:signature>", ExportFile.as_view(), name="export-file"),
    path("", include("portal.urls")),
]

handler400 = "marketerapi.problems.handler400"
handler403 = "marketerapi.problems.handler403"
handler404 = "marketerapi.problems.handler404"
handler500 = "marketerapi.problems.handler500"
