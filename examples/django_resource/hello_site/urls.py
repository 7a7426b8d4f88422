"""GET /hello (plain Django view) and GET /items (DRF, scope items:read)."""

from django.urls import path

from hello_site import views

urlpatterns = [
    path("hello", views.hello),
    path("items", views.Items.as_view()),
]
