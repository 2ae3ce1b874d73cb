"""Audience pages: the list, detail, publish, versions… (views.py), the rule editor with
its live preview and validation (editor.py) and the copy into my team (copying.py). Each
module keeps its own routes."""

from portal.audiences import copying, editor, views

urlpatterns = views.urlpatterns + editor.urlpatterns + copying.urlpatterns
