"""The app's URLs plus one bare JsonResponse view, for bench/api_load.py only (bench/api_settings.py)."""

from django.http import JsonResponse
from django.urls import path

from config.urls import handler404, handler500  # noqa: F401
from config.urls import urlpatterns as app_urlpatterns


def bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare/", bare), *app_urlpatterns]
