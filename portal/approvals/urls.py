from django.urls import path

from portal.approvals import views

urlpatterns = [
    path("", views.inbox, name="inbox"),
]
