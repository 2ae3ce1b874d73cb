"""tokens API."""

urlpatterns: list = []
