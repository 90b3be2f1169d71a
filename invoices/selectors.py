from django.contrib.auth.models import AnonymousUser
from django.db.models import Q

from accounts.models import User
from invoices.models import Customer, CustomerQuerySet


def customer_list(*, user: User | AnonymousUser, search: str = "") -> CustomerQuerySet:
    """Customers ``user`` may see, filtered by name or legal id."""
    customers = Customer.objects.for_user(user).select_related("business")
    if search:
        customers = customers.filter(Q(name__icontains=search) | Q(legal_id__icontains=search))
    return customers
