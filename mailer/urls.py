from django.urls import path

from mailer import views

app_name = "mailer"
urlpatterns = [
    path("", views.delivery_list_view, name="deliveries"),
    path("stores/<int:store_id>/", views.store_delivery_list_view, name="store_deliveries"),
    path("stores/<int:store_id>/test-email/", views.store_test_email_view, name="store_test_email"),
    path("test-emails/<int:delivery_id>/", views.test_email_view, name="test_email"),
    path("invoices/<int:invoice_id>/panel/", views.invoice_email_panel_view, name="invoice_email_panel"),
    path("invoices/<int:invoice_id>/resend/", views.invoice_resend_view, name="invoice_resend"),
]
