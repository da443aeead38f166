"""The logins the demo prints: staff, and the three customers whose pages show the product."""

from __future__ import annotations

from django.contrib.auth import get_user_model

DEMO_PASSWORD = "subscriptionhub-demo"

#: The customer logins the demo prints (all with DEMO_PASSWORD), and what each shows.
DEMO_LOGINS = {
    "demo@example.com": "paid invoices (one prorated), a credit, usage with overage, a webhook endpoint, e-mails",
    "trial@example.com": "a free trial that is still running",
    "dunning@example.com": "a declined card: a failed invoice in dunning",
}


def customer_login(email: str):
    """A customer login whose e-mail is already verified."""
    from allauth.account.models import EmailAddress

    User = get_user_model()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, email, DEMO_PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def staff_login():
    User = get_user_model()
    staff = User.objects.filter(username="admin").first()
    if staff is None:
        staff = User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
    return staff
