from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import demo_data_load


class Command(BaseCommand):
    help = "Loads the demo business (two stores, users and customers); safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("Demo data is for development only; DJANGO_ENV is production.")
        business, logins = demo_data_load()
        self.stdout.write(f"Demo business: {business.name} ({business.stores.count()} stores)")
        self.stdout.write("Sign in at http://127.0.0.1:8000/accounts/login/ with:")
        for login in logins:
            self.stdout.write(f"  {login.role:<12} {login.username:<14} {login.password}")
