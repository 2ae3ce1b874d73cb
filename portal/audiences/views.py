from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from portal.web import portal_view


@portal_view
def audience_list(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/home.html", {})


urlpatterns = [
    path("", audience_list, name="list"),
]
