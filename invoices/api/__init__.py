"""The POS API: customers and invoices over REST, for point-of-sale terminals (``/api/v1/``)."""
