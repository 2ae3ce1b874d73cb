"""The campaigns API."""

urlpatterns: list = []
