"""factory_boy factories for the test suites."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from audiences.models import Consent, Profile, ProfileEvent
from governance.models import Environment


def environment(slug: str = "sandbox") -> Environment:
    return Environment.objects.get(slug=slug)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("pw")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            for name in extracted:
                self.groups.add(Group.objects.get_or_create(name=name)[0])


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    environment = factory.LazyFunction(lambda: environment("sandbox"))
    external_id = factory.Sequence(lambda n: f"cust-{n:06d}")
    email = factory.LazyAttribute(lambda p: f"{p.external_id}@example.test")
    phone = "+447700900123"
    first_name = "Ann"
    last_name = "Example"
    locale = "en_GB"
    country = "GB"
    region = "UK"
    lifecycle_stage = "customer"
    attributes = factory.LazyFunction(dict)


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    profile = factory.SubFactory(ProfileFactory)
    channel = "email"
    status = "granted"
    source = "test"
    captured_at = factory.LazyFunction(timezone.now)


class ProfileEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProfileEvent

    profile = factory.SubFactory(ProfileFactory)
    type = "purchase"
    occurred_at = factory.LazyFunction(timezone.now)
    properties = factory.LazyFunction(dict)
