from django.contrib.auth import views as auth_views
from django.urls import include, path

from governance.limits.signin import ThrottledSignInForm
from portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("environment/", views.environment_switch, name="environment-switch"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=ThrottledSignInForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audiences/", include(("portal.audiences.urls", "portal-audiences"))),
    path("approvals/", include(("portal.approvals.urls", "portal-approvals"))),
    path("audit/", include(("portal.audit.urls", "portal-audit"))),
    path("requests/", include(("portal.requests.urls", "portal-requests"))),
]
