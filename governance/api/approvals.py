"""approvals API."""

urlpatterns: list = []
