"""The project before the cut-over: simplejwt's endpoints."""

from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from tests.django_site.urls_jwtwarden import Hello

urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/hello", Hello.as_view()),
]
