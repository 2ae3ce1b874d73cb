"""The admin app config, installed in place of `django.contrib.admin`: Django's admin with
the site of marketerapi/admin/site.py. Kept apart from the site, which imports models and
forms that cannot load while the app registry is being filled."""

from django.contrib.admin.apps import AdminConfig


class MarketerAdminConfig(AdminConfig):
    default_site = "marketerapi.admin.site.MarketerAdminSite"
