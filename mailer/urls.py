from django.urls import path

from mailer import views

app_name = "mailer"
urlpatterns = [
    path("stores/<int:store_id>/test-email/", views.store_test_email_view, name="store_test_email"),
]
