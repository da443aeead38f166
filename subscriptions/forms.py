from __future__ import annotations

from django import forms

from sharedkernel.values import is_currency

COMMON_CURRENCIES = ["USD", "EUR", "GBP", "JPY", "KWD", "CAD", "AUD", "CHF"]


class SignupProfileForm(forms.Form):
    """Extra sign-up fields (allauth ACCOUNT_SIGNUP_FORM_CLASS). Kept until the
    e-mail address is verified, then the customer is registered."""

    name = forms.CharField(max_length=200, label="Your name or company")
    currency = forms.ChoiceField(choices=[(c, c) for c in COMMON_CURRENCIES], initial="USD", label="Billing currency")
    country = forms.RegexField(
        regex=r"^[A-Za-z]{2}$",
        max_length=2,
        label="Country code",
        help_text="Two letters, e.g. US, DE, JP.",
        error_messages={"invalid": "Use the two-letter country code, e.g. US."},
    )
    region = forms.CharField(max_length=10, required=False, label="State / region code", help_text="Optional, e.g. CA.")

    def clean_currency(self) -> str:
        value = self.cleaned_data["currency"].upper()
        if not is_currency(value):
            raise forms.ValidationError("Not a currency we can bill in.")
        return value

    def signup(self, request, user) -> None:
        from subscriptions.models import SignupProfile

        SignupProfile.objects.update_or_create(
            user=user,
            defaults={
                "name": self.cleaned_data["name"],
                "currency": self.cleaned_data["currency"],
                "country": self.cleaned_data["country"].upper(),
                "region": self.cleaned_data.get("region", "").upper(),
            },
        )


class CancelForm(forms.Form):
    WHEN = [("period_end", "At the end of the current period"), ("now", "Right away")]

    when = forms.ChoiceField(choices=WHEN, widget=forms.RadioSelect, initial="period_end")
    reason = forms.CharField(max_length=200, required=False, label="Why are you leaving? (optional)")


class SubscribeForm(forms.Form):
    currency = forms.CharField(max_length=3)
    trial = forms.BooleanField(required=False)
