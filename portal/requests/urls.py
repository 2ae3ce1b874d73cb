from django.urls import path

from portal.requests import views

urlpatterns = [
    path("", views.history, name="history"),
]
