from rest_framework.routers import DefaultRouter

from invoices.api.views import CustomerViewSet, InvoiceViewSet

app_name = "api"

router = DefaultRouter(use_regex_path=False)
router.include_format_suffixes = False  # ?format=json is enough
router.register("customers", CustomerViewSet, basename="customer")
router.register("invoices", InvoiceViewSet, basename="invoice")

urlpatterns = router.urls
