from django.urls import path

from invoices import views

app_name = "invoices"
urlpatterns = [
    path("", views.invoice_list_view, name="list"),
    path("new/", views.invoice_create_view, name="create"),
    path("totals/", views.invoice_totals_view, name="totals"),
    path("<int:invoice_id>/", views.invoice_detail_view, name="detail"),
    path("<int:invoice_id>/edit/", views.invoice_edit_view, name="edit"),
    path("<int:invoice_id>/apply/", views.invoice_apply_view, name="apply"),
    path("<int:invoice_id>/void/", views.invoice_void_view, name="void"),
    path("<int:invoice_id>/pdf/", views.invoice_pdf_view, name="pdf"),
    path("customers/", views.customer_list_view, name="customer_list"),
    path("customers/new/", views.customer_create_view, name="customer_create"),
    path("customers/<int:customer_id>/edit/", views.customer_edit_view, name="customer_edit"),
]
