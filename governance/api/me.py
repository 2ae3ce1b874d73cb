"""me API."""

urlpatterns: list = []
