"""factory_boy factories for the test suites: one per model a test sets up, each making a
valid, governed-looking row (an environment, an owning team, a state the product could be in).

Factories write rows directly: they are for a test's *setup*. What a test is about goes
through the service (`audience_publish`, `webhook_create`, …), so that its policy check,
audit event and outbox event are part of what is tested. A factory never writes an audit
event: tests that count them start from none.

    AudienceFactory()                                     a draft audience of growth in the sandbox
    AudienceFactory(environment=pilot, owner_team__name="retention", channel="sms")
    AudienceFactory(published=True)                       … with a live version 1 (no members)
    AudienceFactory(published=[ann, bob])                 … whose live version has these members
    AudienceVersionFactory(audience=a, live=True, memberships=profiles)   the next version, made live
    ProfileFactory(region="EU", consent="granted")        with granted email consent
    ProfileFactory(consent={"email": "granted", "sms": "denied"})
    DestinationFactory(adapter="engagement", config={…}, credentials={"api_key": …})
    WebhookSubscriptionFactory(url=…, event_types=["audience.published"])   signed with WEBHOOK_SECRET
    ApprovalRequestFactory(target=audience)               pending, two steps (approver; developer or admin)
    JobFactory(kind="export", failed=True)
    ApiTokenFactory(user=u, environment=pilot).secret     the Bearer secret, shown once
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from audiences.models import (
    Audience,
    AudienceState,
    AudienceVersion,
    Consent,
    Membership,
    Profile,
    ProfileEvent,
    VersionState,
)
from governance.models import ApiToken, ApprovalRequest, ApprovalState, Door, Environment, hash_token
from integrations.models import Destination, Job, JobState, SubscriptionState, WebhookSubscription

RULES_EU: dict[str, Any] = {"all": [{"attr": "region", "op": "in", "value": ["EU"]}]}
# The signing secret of WebhookSubscriptionFactory's subscriptions (a receiver verifies with it).
WEBHOOK_SECRET = "whsec_test-secret-0123456789abcdefghij"
# The two steps of the dual-control policies of pilot and production (PRODUCT.md §5).
TWO_STEPS = [["approver"], ["developer", "admin"]]
ALL_SCOPES = ["read", "write", "publish", "export", "ingest", "admin"]


def environment(slug: str = "sandbox") -> Environment:
    return Environment.objects.get(slug=slug)


class TeamFactory(factory.django.DjangoModelFactory):
    """A team (a Django group that holds no role); growth unless named."""

    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = "growth"


def team(name: str) -> Group:
    return TeamFactory(name=name)


class UserFactory(factory.django.DjangoModelFactory):
    """UserFactory(groups=["campaign_operator", "growth"]): groups are roles and teams, by name."""

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


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """A token of `user` in an environment, with every scope (what it may do is then bounded
    by its owner's roles). Its Bearer secret is `token.secret`, as the API shows it once."""

    class Meta:
        model = ApiToken

    environment = factory.LazyFunction(environment)
    user = factory.SubFactory(UserFactory)
    owner = factory.SelfAttribute("user")
    name = "test"
    scopes = factory.LazyFunction(lambda: list(ALL_SCOPES))
    expires_at = factory.LazyFunction(ApiToken.default_expiry)

    # Not a column: _create keeps it on the instance, as the API shows it once.
    secret = factory.LazyAttribute(lambda t: ApiToken.generate_secret(t.environment))
    prefix = factory.LazyAttribute(lambda t: t.secret[:20])
    key_hash = factory.LazyAttribute(lambda t: hash_token(t.secret))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        secret = kwargs.pop("secret")
        token = super()._create(model_class, *args, **kwargs)
        token.secret = secret
        return token


# --- profiles -------------------------------------------------------------------------------


class ProfileFactory(factory.django.DjangoModelFactory):
    """A customer in the sandbox (UK, en_GB); `consent="granted"` adds email consent,
    `consent={"sms": "denied"}` one row per channel."""

    class Meta:
        model = Profile
        skip_postgeneration_save = True

    environment = factory.LazyFunction(environment)
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

    @factory.post_generation
    def consent(self, create, extracted, **kwargs):
        if not create or extracted is None:
            return
        by_channel = extracted if isinstance(extracted, dict) else {kwargs.get("channel", "email"): extracted}
        now = timezone.now()
        Consent.objects.bulk_create(
            [
                Consent(profile=self, channel=channel, status=status, source="test", captured_at=now)
                for channel, status in by_channel.items()
            ]
        )


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


# --- audiences and versions -----------------------------------------------------------------


def _free_name(environment: Environment, base: str) -> str:
    """`base`, or `base 2`, `base 3` … when an audience of the environment has it (names are unique)."""
    taken = set(Audience.objects.filter(environment=environment, name__startswith=base).values_list("name", flat=True))
    return next(name for name in (base, *(f"{base} {n}" for n in range(2, len(taken) + 2))) if name not in taken)


def _next_version_number(audience: Audience) -> int:
    last = audience.versions.order_by("-number").values_list("number", flat=True).first() if audience.pk else None
    return (last or 0) + 1


class AudienceFactory(factory.django.DjangoModelFactory):
    """A draft email audience of the team growth in the sandbox: "EU customers" (numbered
    when the environment has one already), with rules matching customers in the EU.

    `published=True` makes its rules live as its next version (no members);
    `published=[profiles]` gives that version these members.
    """

    class Meta:
        model = Audience
        skip_postgeneration_save = True

    environment = factory.LazyFunction(environment)
    name = factory.LazyAttribute(lambda a: _free_name(a.environment, "EU customers"))
    owner_team = factory.SubFactory(TeamFactory)
    channel = "email"
    purpose = "winback"
    description = "EU customers, for tests."
    rules = factory.LazyFunction(lambda: copy.deepcopy(RULES_EU))
    state = AudienceState.DRAFT

    @factory.post_generation
    def published(self, create, extracted, **kwargs):
        if not create or extracted is None or extracted is False:
            return
        members: Iterable[Profile] = () if extracted is True else extracted
        AudienceVersionFactory(audience=self, memberships=members, live=True)


class AudienceVersionFactory(factory.django.DjangoModelFactory):
    """The audience's next version, built (ready) from its current rules and channel.

    `memberships=[profiles]` adds member rows (and counts them, unless `members` is given);
    `live=True` makes it the live version and the audience published, as a publish would.
    The traits `building` and `failed` give a version that is not (yet) built.
    """

    class Meta:
        model = AudienceVersion
        skip_postgeneration_save = True

    audience = factory.SubFactory(AudienceFactory)
    number = factory.LazyAttribute(lambda v: _next_version_number(v.audience))
    rules = factory.LazyAttribute(lambda v: copy.deepcopy(v.audience.rules))
    channel = factory.LazyAttribute(lambda v: v.audience.channel)
    state = VersionState.READY
    matching = 0
    members = 0
    added = 0
    removed = 0
    built_at = factory.LazyFunction(timezone.now)

    class Params:
        building = factory.Trait(state=VersionState.BUILDING, matching=None, members=None, built_at=None)
        failed = factory.Trait(state=VersionState.FAILED, built_at=None, error="The build failed (test).")

    @factory.post_generation
    def memberships(self, create, extracted, **kwargs):
        if not create or not extracted:
            return
        profiles = list(extracted)
        Membership.objects.bulk_create([Membership(version=self, profile=p) for p in profiles])
        if not self.members:
            self.matching = self.members = self.added = len(profiles)
            self.save(update_fields=["matching", "members", "added"])

    @factory.post_generation
    def live(self, create, extracted, **kwargs):
        if not create or not extracted:
            return
        audience = self.audience
        audience.live_version = self
        audience.state = AudienceState.PUBLISHED
        audience.save(update_fields=["live_version", "state"])


# --- integrations ---------------------------------------------------------------------------


class DestinationFactory(factory.django.DjangoModelFactory):
    """An active destination in the sandbox; a `file` drop unless told otherwise.
    `credentials={…}` are stored encrypted, as the API stores them."""

    class Meta:
        model = Destination

    environment = factory.LazyFunction(environment)
    name = factory.Sequence(lambda n: f"destination-{n}")
    adapter = "file"
    config = factory.LazyFunction(lambda: {"directory": "/tmp/marketerapi-test-drops", "format": "jsonl"})
    is_active = True

    class Params:
        credentials = None

    credentials_encrypted = factory.LazyAttribute(lambda d: _encrypt_credentials(d.credentials))


def _encrypt_credentials(credentials: dict[str, Any] | None) -> str:
    from integrations.destinations.credentials import encrypt_credentials

    return encrypt_credentials(credentials) if credentials else ""


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    """An active subscription in the sandbox to `consent.updated`, signed with WEBHOOK_SECRET
    (or `secret=…`). Made directly: the URL checks of webhook_create are its own tests'."""

    class Meta:
        model = WebhookSubscription

    environment = factory.LazyFunction(environment)
    url = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    event_types = factory.LazyFunction(lambda: ["consent.updated"])
    state = SubscriptionState.ACTIVE

    class Params:
        secret = WEBHOOK_SECRET

    secret_encrypted = factory.LazyAttribute(lambda s: _encrypt_secret(s.secret))


def _encrypt_secret(secret: str) -> str:
    from integrations.webhooks.signing import encrypt_secret

    return encrypt_secret(secret)


class JobFactory(factory.django.DjangoModelFactory):
    """A queued job in the sandbox; the traits `running`, `succeeded` and `failed` move it on."""

    class Meta:
        model = Job

    environment = factory.LazyFunction(environment)
    kind = "destination.push"
    state = JobState.QUEUED

    class Params:
        running = factory.Trait(state=JobState.RUNNING, attempts=1, started_at=factory.LazyFunction(timezone.now))
        succeeded = factory.Trait(
            state=JobState.SUCCEEDED,
            attempts=1,
            started_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
        )
        failed = factory.Trait(
            state=JobState.FAILED,
            attempts=1,
            started_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
            errors=factory.LazyFunction(lambda: [{"code": "failed", "message": "The job failed (test)."}]),
        )


# --- approvals ------------------------------------------------------------------------------


def _target_fingerprint(action: str, target: Any) -> str:
    from governance.approvals import registry

    if target is None or not registry.has_executor(action):
        return ""
    fingerprint = registry.executor_for(action).fingerprint
    return fingerprint(target) if fingerprint is not None else ""


class ApprovalRequestFactory(factory.django.DjangoModelFactory):
    """A pending request in pilot by an operator of growth to archive a published audience,
    waiting for two votes (an approver, then a developer or an admin), expiring in 72 hours.

    `target=audience` files it for that object (type, id, label and fingerprint from it);
    without one it names an audience by id only.
    """

    class Meta:
        model = ApprovalRequest

    class Params:
        target = None

    environment = factory.LazyFunction(lambda: environment("pilot"))
    action = "audience.archive"
    target_type = factory.LazyAttribute(lambda r: r.target._meta.label_lower if r.target else "audiences.audience")
    target_id = factory.LazyAttribute(lambda r: str(r.target.pk) if r.target else "999999")
    target_label = factory.LazyAttribute(lambda r: str(r.target)[:200] if r.target else "Spring sale")
    summary = factory.LazyAttribute(lambda r: f"Archive the published audience {r.target_label!r}")
    change = factory.LazyFunction(lambda: {"context": {}})
    target_fingerprint = factory.LazyAttribute(lambda r: _target_fingerprint(r.action, r.target))
    policy = factory.LazyAttribute(lambda r: {"action": r.action, "steps": [list(s) for s in TWO_STEPS]})
    requester = factory.SubFactory(UserFactory, groups=["campaign_operator", "growth"])
    requester_door = Door.API
    state = ApprovalState.PENDING
    required = factory.LazyAttribute(lambda r: len(r.policy.get("steps") or [1]))
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda r: r.created_at + timedelta(hours=72))


# --- campaigns ------------------------------------------------------------------------------


class CampaignFactory(factory.django.DjangoModelFactory):
    """A draft email campaign of the audience's team to its audience (an AudienceFactory's,
    published with no members, unless given), through a file destination of the environment."""

    class Meta:
        model = "campaigns.Campaign"

    environment = factory.LazyFunction(environment)
    name = factory.Sequence(lambda n: f"campaign-{n}")
    audience = factory.LazyAttribute(lambda c: AudienceFactory(environment=c.environment, published=True))
    owner_team = factory.LazyAttribute(lambda c: c.audience.owner_team)
    destination = factory.LazyAttribute(lambda c: DestinationFactory(environment=c.environment))
    channel = "email"
    purpose = "winback"
    assets = factory.LazyFunction(
        lambda: {"subject": "Hello {{first_name}}", "body": "Hi {{first_name}}", "sender": "news@example.test"}
    )
    state = "draft"
