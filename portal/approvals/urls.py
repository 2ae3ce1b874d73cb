from django.urls import path

from portal.approvals import views

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<int:approval_id>/", views.detail, name="detail"),
    path("<int:approval_id>/approve/", views.approve, name="approve"),
    path("<int:approval_id>/reject/", views.reject, name="reject"),
    path("<int:approval_id>/cancel/", views.cancel, name="cancel"),
]
