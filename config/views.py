from django.shortcuts import redirect, render
from django.views import defaults

from sharedkernel.api.errors import json_not_found, json_server_error


def home(request):
    """Customers land on their dashboard; everyone else on the plan catalog."""
    if request.user.is_authenticated:
        return redirect("subscriptions:dashboard")
    return redirect("subscriptions:plans")


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return render(request, "500.html", status=500)
