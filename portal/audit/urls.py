from django.urls import path

from portal.audit import views

urlpatterns = [
    path("", views.timeline, name="timeline"),
]
