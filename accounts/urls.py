from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.user_list_view, name="user_list"),
    path("new/", views.user_create_view, name="user_create"),
    path("<int:pk>/edit/", views.user_edit_view, name="user_edit"),
]
