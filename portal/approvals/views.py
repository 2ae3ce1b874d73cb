from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.web import portal_view


@portal_view
def inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/home.html", {})
