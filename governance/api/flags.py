"""flags API."""

urlpatterns: list = []
