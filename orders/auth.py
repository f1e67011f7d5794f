"""The login limit's authentication backend (django-axes, configured in settings)."""

from axes.backends import AxesStandaloneBackend


class LoginLimitBackend(AxesStandaloneBackend):
    """django-axes' check, for logins that come with a request (every login form).
    A login without one (Django's test client, a script) has no address to limit and
    goes straight to the next backend instead of failing."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
