from governance.api import approvals, audit, flags, me, tokens

urlpatterns = [
    *me.urlpatterns,
    *tokens.urlpatterns,
    *flags.urlpatterns,
    *approvals.urlpatterns,
    *audit.urlpatterns,
]
