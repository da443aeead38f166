"""allauth hook: a verified e-mail address makes the person a customer."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib import messages

from sharedkernel.outside import ensure_outside_transaction
from subscriptions import commands
from subscriptions.models import Customer, SignupProfile


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """The verification and password e-mails go to the SMTP server too: never inside a transaction."""
        ensure_outside_transaction("smtp.send")
        super().send_mail(template_prefix, email, context)

    def confirm_email(self, request, email_address) -> bool:
        confirmed = super().confirm_email(request, email_address)
        user = email_address.user
        if confirmed and not Customer.objects.filter(user=user).exists():
            profile = SignupProfile.objects.filter(user=user).first()
            if profile is not None:
                try:
                    commands.register_customer(
                        name=profile.name,
                        email=email_address.email,
                        currency=profile.currency,
                        country=profile.country,
                        region=profile.region,
                        user=user,
                    )
                except commands.EmailTaken:  # staff registered this address already (API or admin)
                    messages.error(
                        request,
                        "A customer account with this e-mail address already exists; ask us to link it to your login.",
                    )
        return confirmed
