from django.urls import path

from stores import views

app_name = "stores"
urlpatterns = [
    path("", views.store_list_view, name="list"),
    path("<int:store_id>/edit/", views.store_edit_view, name="edit"),
    path("<int:store_id>/preview/", views.store_preview_view, name="preview"),
]
