"""URLs that exist only for tests of the error handling: views that fail on purpose."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class BoomApi(APIView):
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("secret internals: do not leak this")


class OkApi(APIView):
    def get(self, request):
        return Response({"ok": True})


def plain_boom(request):
    raise RuntimeError("secret internals of a plain view")


urlpatterns = [
    path("api/v1/boom", BoomApi.as_view()),
    path("api/v1/ok", OkApi.as_view()),
    path("api/v1/plain-boom", plain_boom),
    path("", include("config.urls")),
]

handler404 = "config.exceptions.handler404"
handler500 = "config.exceptions.handler500"
