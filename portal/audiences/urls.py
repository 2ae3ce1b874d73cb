"""Audience pages: the list, detail, publish, versions… (views.py) and the rule editor with
its live preview and validation (editor.py). Each module keeps its own routes."""

from portal.audiences import editor, views

urlpatterns = views.urlpatterns + editor.urlpatterns
