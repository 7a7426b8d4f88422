"""URLs of the test project."""

from __future__ import annotations

from django.urls import path

from tests.django_site import views

urlpatterns = [
    path("hello", views.hello),
    path("ahello", views.ahello),
    path("health", views.health),
    path("items", views.items),
    path("aitems", views.aitems),
    path("drf/hello", views.DRFHello.as_view()),
    path("drf/items", views.DRFItems.as_view()),
    path("drf/admin", views.DRFAdmin.as_view()),
    path("drf/open", views.DRFOpen.as_view()),
]
