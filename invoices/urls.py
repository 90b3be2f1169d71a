from django.urls import path

from invoices import views

app_name = "invoices"
urlpatterns = [
    path("customers/", views.customer_list_view, name="customer_list"),
]
