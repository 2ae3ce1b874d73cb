"""Synthetic, seeded sandbox data with production-like distributions.

`SandboxData(seed=…, profiles=…, anchor=…)` describes one sandbox: N random profiles
followed by the named scenarios of `sandbox.scenarios`. It yields plain tuples, which the
loaders (`sandbox.loaders`) turn into COPY text or batched inserts:

- `ProfileRow`  (position, external_id, email, phone, push_token, first_name, last_name, locale,
                 country, region, lifecycle_stage, attributes_json, created_off, updated_off)
- `ConsentRow`  (position, channel, status, captured_off) — one ledger row is derived from each
- `EventRow`    (position, type, occurred_off, properties_json, received_off)

`position` is the profile's place in the sandbox (0…total-1). Times are whole seconds
*before* the anchor (midnight UTC of the reset date), so "cart abandoned within 7 days"
rules match on the day of the reset while everything else depends on the seed alone.

Determinism: the output is a pure function of (seed, profiles, anchor) for a given Faker
version. Each table has its own `random.Random` stream (seeded from a string, which Python
hashes with SHA-512, so PYTHONHASHSEED plays no part), and the per-profile facts that
consent and events depend on (locale, lifecycle stage, age, opt-out) come from a separate
"traits" stream computed once. The streams can therefore be generated in any order, which
lets the PostgreSQL loader COPY one table after another.

Speed: a seeded Faker builds small name pools per locale once per process; rows are picked from the pools with
`random.Random` and weighted choices go through 1,000-slot lookup tables, so a million
profiles take seconds, not the hour that calling Faker per row would.

Synthetic PII only: emails use reserved domains (RFC 2606 / RFC 6761), phones the ranges
regulators keep for fiction (Ofcom 07700 900xxx, NANP 555-01xx, ARCEP 06 39 98 xx xx).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import unicodedata
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from sandbox import scenarios as scenario_data

DAY = 86_400
EVENT_WINDOW_DAYS = 90


class LocaleSpec(NamedTuple):
    code: str  # the profile's locale
    country: str
    region: str
    currency: str
    weight: float  # share of random profiles, in percent
    faker: str = ""  # Faker locale of the name pool, when not `code`


# Shares loosely follow a European/North-American retailer with a few APAC and MEA markets.
LOCALES: tuple[LocaleSpec, ...] = (
    LocaleSpec("en_US", "US", "NA", "USD", 26),
    LocaleSpec("en_GB", "GB", "UK", "GBP", 14),
    LocaleSpec("de_DE", "DE", "EU", "EUR", 10),
    LocaleSpec("fr_FR", "FR", "EU", "EUR", 8),
    LocaleSpec("es_ES", "ES", "EU", "EUR", 5),
    LocaleSpec("it_IT", "IT", "EU", "EUR", 4),
    LocaleSpec("nl_NL", "NL", "EU", "EUR", 3),
    LocaleSpec("pl_PL", "PL", "EU", "PLN", 2),
    LocaleSpec("sv_SE", "SE", "EU", "SEK", 1.5),
    LocaleSpec("pt_BR", "BR", "LATAM", "BRL", 6),
    LocaleSpec("es_MX", "MX", "LATAM", "MXN", 3.5),
    LocaleSpec("en_CA", "CA", "NA", "CAD", 3),
    LocaleSpec("fr_CA", "CA", "NA", "CAD", 1),
    LocaleSpec("ja_JP", "JP", "APAC", "JPY", 4),
    LocaleSpec("en_AU", "AU", "APAC", "AUD", 3),
    LocaleSpec("en_IN", "IN", "APAC", "INR", 2),
    LocaleSpec("ko_KR", "KR", "APAC", "KRW", 2),
    LocaleSpec("ar_AE", "AE", "MEA", "AED", 1.5, faker="ar_AA"),  # Faker has no ar_AE names
    LocaleSpec("he_IL", "IL", "MEA", "ILS", 0.5),
)

# lifecycle stage → (share in percent, profile age range in days)
STAGES: dict[str, tuple[float, tuple[int, int]]] = {
    "lead": (28, (0, 365)),
    "prospect": (20, (0, 730)),
    "customer": (27, (30, 1825)),
    "loyal": (9, (365, 2555)),
    "lapsed": (10, (180, 1825)),
    "churned": (6, (365, 2555)),
}
STAGE_NAMES: tuple[str, ...] = (*STAGES, "")  # index len(STAGES) stands for "no stage"
NO_STAGE = len(STAGES)

# Share of random profiles (percent) whose optional field is empty. Phones are missing
# more often than the rest, as in most CRMs.
NULL_RATES: dict[str, float] = {
    "email": 2,
    "phone": 8,
    "first_name": 3,
    "last_name": 4,
    "locale": 3,
    "country": 2,  # region is empty exactly when country is
    "lifecycle_stage": 4,
}

CHANNELS: tuple[str, ...] = ("email", "sms", "push", "ads")
STATUSES: tuple[str, ...] = ("granted", "denied", "unknown")
# channel → percent granted / denied / unknown, among stored consents
CONSENT_MIX: dict[str, tuple[float, float, float]] = {
    "email": (62, 18, 20),
    "sms": (28, 22, 50),
    "push": (38, 17, 45),
    "ads": (48, 27, 25),
}
CONSENT_STORED_RATE = 97  # percent: a channel never asked about has no consent row at all
OPTED_OUT_RATE = 3  # percent of random profiles denied on every channel
CONSENT_SOURCE = "sandbox"

EVENT_TYPES: tuple[str, ...] = ("page_view", "product_viewed", "cart_abandoned", "purchase", "email_opened")
# lifecycle stage → (mean events in the last 90 days, weights of EVENT_TYPES)
EVENT_PROFILE: dict[str, tuple[float, tuple[float, ...]]] = {
    "lead": (1.2, (50, 28, 8, 0, 14)),
    "prospect": (1.8, (46, 28, 10, 2, 14)),
    "customer": (2.8, (38, 25, 10, 13, 14)),
    "loyal": (4.5, (30, 25, 9, 18, 18)),
    "lapsed": (1.0, (50, 20, 5, 0, 25)),
    "churned": (0.4, (50, 20, 5, 0, 25)),
    "": (1.6, (48, 28, 9, 3, 12)),
}

# Reserved for documentation and testing: RFC 2606 (example.com/.net/.org) and RFC 6761
# (.test, .example). Mail to them never reaches anyone.
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("example.com", 30),
    ("example.net", 12),
    ("example.org", 8),
    ("example.test", 25),
    ("mail.example", 15),
    ("shop.example", 10),
)
RESERVED_EMAIL_DOMAINS: tuple[str, ...] = tuple(domain for domain, _ in EMAIL_DOMAINS)

# Ranges kept for drama and testing: Ofcom (UK mobile 07700 900000-900999), NANP
# (555-0100 to 555-0199 in any area code), ARCEP (French mobile 06 39 98 00 00-99 99).
# Countries without such a range get a UK drama number.
RESERVED_PHONE_PATTERN = re.compile(r"^(\+447700900\d{3}|\+1\d{3}55501\d{2}|\+3363998\d{4})$")
NANP_AREA_CODES: tuple[str, ...] = ("202", "212", "305", "312", "415", "512", "617", "206", "416", "514", "604")

LOYALTY_TIERS: dict[str, tuple[tuple[str, float], ...]] = {
    "customer": (("bronze", 50), ("silver", 35), ("gold", 13), ("platinum", 2)),
    "loyal": (("silver", 20), ("gold", 55), ("platinum", 25)),
    "lapsed": (("bronze", 60), ("silver", 30), ("gold", 10)),
    "churned": (("bronze", 70), ("silver", 25), ("gold", 5)),
}
# lifecycle stage → (mu, sigma) of a log-normal lifetime value; leads and prospects have 0
LIFETIME_VALUE: dict[str, tuple[float, float]] = {
    "customer": (4.6, 0.9),
    "loyal": (6.2, 0.7),
    "lapsed": (4.3, 0.8),
    "churned": (4.0, 0.8),
}
SIGNUP_SOURCES: tuple[tuple[str, float], ...] = (
    ("web", 45),
    ("mobile_app", 25),
    ("store", 12),
    ("referral", 8),
    ("social", 7),
    ("partner", 3),
)
NEWSLETTER_TOPICS: tuple[str, ...] = ("new_arrivals", "sales", "style_tips", "events", "loyalty_news", "sustainability")
TOPIC_COUNTS: tuple[tuple[int, float], ...] = ((0, 35), (1, 30), (2, 20), (3, 15))
ATTRIBUTE_MISSING_RATE = 3  # percent of profiles without a given optional attribute key
APP_INSTALLED_RATE = 35  # percent of profiles with the app (`app_installed`)
# Percent of profiles with the app whose device token is known (the rest never allowed
# notifications, or their token expired): the push channel's contact point.
PUSH_TOKEN_RATE = 90

PAGE_PATHS: tuple[str, ...] = (
    "/",
    "/new",
    "/sale",
    "/women",
    "/men",
    "/kids",
    "/home",
    "/search",
    "/stores",
    "/help/returns",
    "/account",
    "/blog/spring-lookbook",
)
CATEGORIES: tuple[str, ...] = ("shoes", "outerwear", "dresses", "shirts", "trousers", "accessories", "home", "beauty")
EMAIL_CAMPAIGNS: tuple[str, ...] = (
    "welcome-series",
    "weekly-newsletter",
    "spring-sale",
    "back-in-stock",
    "loyalty-points",
    "cart-reminder",
)

# JPY and KRW have no minor unit; everything else is priced in cents.
CURRENCY_FACTOR: dict[str, float] = {"JPY": 150.0, "KRW": 1300.0, "INR": 80.0}


# --- rows -------------------------------------------------------------------------


class ProfileRow(NamedTuple):
    position: int
    external_id: str
    email: str | None
    phone: str | None
    push_token: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    country: str | None
    region: str | None
    lifecycle_stage: str | None
    attributes: str  # JSON text
    created_off: int  # seconds before the anchor
    updated_off: int


class ConsentRow(NamedTuple):
    position: int
    channel: str
    status: str
    captured_off: int


class EventRow(NamedTuple):
    position: int
    type: str
    occurred_off: int
    properties: str  # JSON text
    received_off: int


def random_external_id(index: int) -> str:
    return f"sbx-{index + 1:07d}"


def reset_anchor(today: date | None = None) -> date:
    """The anchor of a reset: its date in UTC; event times count back from its midnight."""
    return today or datetime.now(UTC).date()


def anchor_datetime(anchor: date) -> datetime:
    return datetime.combine(anchor, time(0, 0), tzinfo=UTC)


def dumps(value: object) -> str:
    """JSON text as stored by the loaders: compact, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


# --- fast weighted choice ---------------------------------------------------------

TABLE_SIZE = 1000


def lookup_table(weights: Sequence[float]) -> tuple[int, ...]:
    """1,000 slots holding each index in proportion to its weight: `table[int(random() * 1000)]`.

    Shares are therefore rounded to 0.1 percentage points, which is plenty for test data and
    several times faster than `random.choices`.
    """
    total = float(sum(weights))
    slots: list[int] = []
    cumulative = 0.0
    for i, weight in enumerate(weights):
        cumulative += weight
        end = round(cumulative / total * TABLE_SIZE)
        slots.extend([i] * (end - len(slots)))
    return tuple(slots)


def poisson_table(mean: float) -> tuple[int, ...]:
    probabilities = [math.exp(-mean) * mean**k / math.factorial(k) for k in range(20)]
    return lookup_table(probabilities)


# --- name pools -------------------------------------------------------------------

POOL_SIZE = 300
POOL_SEED = "marketerapi-sandbox-names-v1"


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", plain.lower())


@lru_cache(maxsize=1)
def name_pools() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """locale → (first names, last names): POOL_SIZE draws each from a seeded Faker, once per process.

    Draws are kept with their repeats, so picking uniformly from a pool keeps Faker's
    weighting (common surnames stay common). The pools are the same for every seed; the
    seed decides who gets which name.
    """
    from faker.factory import Factory

    pools: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for spec in LOCALES:
        # Only the person provider: a full Faker per locale costs ten times as much to build.
        fake: Any = Factory.create(spec.faker or spec.code, providers=["faker.providers.person"])
        fake.seed_instance(f"{POOL_SEED}:{spec.code}")
        firsts = tuple(fake.first_name() for _ in range(POOL_SIZE))
        lasts = tuple(fake.last_name() for _ in range(POOL_SIZE))
        pools[spec.code] = (firsts, lasts)
    return pools


# --- the data set -----------------------------------------------------------------


@dataclass(frozen=True)
class Traits:
    """Per-profile facts that several streams depend on, one compact array each."""

    locale: bytes  # index into LOCALES
    stage: bytes  # index into STAGE_NAMES (NO_STAGE: none)
    age: array  # seconds between creation and the anchor
    opted_out: bytes  # 1: denied on every channel


class SandboxData:
    """The rows of one sandbox: `profiles` random profiles, then the scenario profiles."""

    def __init__(self, *, seed: int, profiles: int, anchor: date) -> None:
        if profiles < 0:
            raise ValueError("profiles must be >= 0")
        self.seed = seed
        self.random_profiles = profiles
        self.anchor = anchor
        self.scenarios = scenario_data.SCENARIOS
        self.scenario_profiles = sum(len(s.profiles) for s in self.scenarios)
        self.total_profiles = profiles + self.scenario_profiles

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"marketerapi-sandbox:{self.seed}:{stream}")

    # -- traits --------------------------------------------------------------------

    @cached_property
    def traits(self) -> Traits:
        rng = self._rng("traits")
        r = rng.random
        n = self.random_profiles
        locale_table = lookup_table([spec.weight for spec in LOCALES])
        stage_weights = [share for share, _ in STAGES.values()]
        stage_null = NULL_RATES["lifecycle_stage"] / 100
        stage_table = lookup_table([w * (1 - stage_null) for w in stage_weights] + [100 * stage_null])
        ages = [(lo * DAY, hi * DAY) for _, (lo, hi) in STAGES.values()] + [(0, 1825 * DAY)]
        opted = OPTED_OUT_RATE / 100
        locale = bytearray(n)
        stage = bytearray(n)
        age = array("q", bytes(8 * n))
        opted_out = bytearray(n)
        for i in range(n):
            locale[i] = locale_table[int(r() * TABLE_SIZE)]
            s = stage_table[int(r() * TABLE_SIZE)]
            stage[i] = s
            lo, hi = ages[s]
            # at least an hour old, so every event and consent fits between creation and now
            age[i] = max(3600, lo + int(r() * (hi - lo)))
            opted_out[i] = r() < opted
        return Traits(bytes(locale), bytes(stage), age, bytes(opted_out))

    # -- profiles ------------------------------------------------------------------

    def profiles(self) -> Iterator[ProfileRow]:
        yield from self._random_profiles()
        yield from self._scenario_profiles()

    def _random_profiles(self) -> Iterator[ProfileRow]:
        rng = self._rng("profiles")
        r = rng.random
        traits = self.traits
        pools = name_pools()
        pool_names = [pools[spec.code] for spec in LOCALES]
        pool_slugs = [
            (tuple(ascii_slug(x) or "member" for x in firsts), tuple(ascii_slug(x) or "customer" for x in lasts))
            for firsts, lasts in pool_names
        ]
        domains = tuple(d for d, _ in EMAIL_DOMAINS)
        domain_table = lookup_table([w for _, w in EMAIL_DOMAINS])
        null = {field: rate / 100 for field, rate in NULL_RATES.items()}
        tiers = {
            stage: (tuple(t for t, _ in spec), lookup_table([w for _, w in spec]))
            for stage, spec in LOYALTY_TIERS.items()
        }
        sources = tuple(s for s, _ in SIGNUP_SOURCES)
        source_table = lookup_table([w for _, w in SIGNUP_SOURCES])
        topic_count_table = lookup_table([w for _, w in TOPIC_COUNTS])
        missing = ATTRIBUTE_MISSING_RATE / 100
        lognorm = rng.lognormvariate
        sample = rng.sample
        pool_size_first = [len(p[0]) for p in pool_names]
        pool_size_last = [len(p[1]) for p in pool_names]

        for i in range(self.random_profiles):
            li = traits.locale[i]
            spec = LOCALES[li]
            stage = STAGE_NAMES[traits.stage[i]]
            firsts, lasts = pool_names[li]
            fi = int(r() * pool_size_first[li])
            la = int(r() * pool_size_last[li])
            first = firsts[fi] if r() >= null["first_name"] else None
            last = lasts[la] if r() >= null["last_name"] else None

            email = None
            if r() >= null["email"]:
                f_slug = pool_slugs[li][0][fi]
                l_slug = pool_slugs[li][1][la]
                style = r()
                if style < 0.45:
                    local = f"{f_slug}.{l_slug}.{i + 1}"
                elif style < 0.70:
                    local = f"{f_slug[0]}{l_slug}{i + 1}"
                elif style < 0.85:
                    local = f"{f_slug}_{l_slug}{i + 1}"
                else:
                    local = f"{l_slug}.{f_slug}{i + 1}"
                email = f"{local}@{domains[domain_table[int(r() * TABLE_SIZE)]]}"
                if r() < 0.015:  # people do type their address in capitals
                    email = email.capitalize()

            phone = None
            if r() >= null["phone"]:
                if spec.country in ("US", "CA"):
                    phone = f"+1{NANP_AREA_CODES[int(r() * len(NANP_AREA_CODES))]}55501{int(r() * 100):02d}"
                elif spec.country == "FR":
                    phone = f"+3363998{int(r() * 10000):04d}"
                else:
                    phone = f"+447700900{int(r() * 1000):03d}"

            locale = spec.code if r() >= null["locale"] else None
            country: str | None
            region: str | None
            if r() >= null["country"]:
                country, region = spec.country, spec.region
            else:
                country = region = None

            attributes: dict[str, object] = {}
            if stage in tiers:
                names, table = tiers[stage]
                if r() >= missing:
                    attributes["loyalty_tier"] = names[table[int(r() * TABLE_SIZE)]]
            if r() >= missing:
                if stage in LIFETIME_VALUE:
                    mu, sigma = LIFETIME_VALUE[stage]
                    attributes["lifetime_value"] = round(lognorm(mu, sigma), 2)
                else:
                    attributes["lifetime_value"] = 0.0
            attributes["signup_source"] = sources[source_table[int(r() * TABLE_SIZE)]]
            if r() >= missing:
                k = TOPIC_COUNTS[topic_count_table[int(r() * TABLE_SIZE)]][0]
                attributes["newsletter_topics"] = sorted(sample(NEWSLETTER_TOPICS, k), key=NEWSLETTER_TOPICS.index)
            app = r() < APP_INSTALLED_RATE / 100
            attributes["app_installed"] = app

            age = traits.age[i]
            updated = int(r() * age)
            push_token = f"{rng.getrandbits(256):064x}" if app and r() < PUSH_TOKEN_RATE / 100 else None
            yield ProfileRow(
                i,
                random_external_id(i),
                email,
                phone,
                push_token,
                first,
                last,
                locale,
                country,
                region,
                stage or None,
                dumps(attributes),
                age,
                updated,
            )

    def _scenario_profiles(self) -> Iterator[ProfileRow]:
        position = self.random_profiles
        for scenario in self.scenarios:
            for number, p in enumerate(scenario.profiles, start=1):
                created = p.created_days_ago * DAY
                yield ProfileRow(
                    position,
                    scenario.external_id(number),
                    p.email,
                    p.phone,
                    p.push_token,
                    p.first_name,
                    p.last_name,
                    p.locale,
                    p.country,
                    p.region,
                    p.lifecycle_stage,
                    dumps(p.attributes),
                    created,
                    created // 2,
                )
                position += 1

    # -- consent -------------------------------------------------------------------

    def consents(self) -> Iterator[ConsentRow]:
        """Current consent per (profile, channel); the loaders add one ledger row for each."""
        rng = self._rng("consent")
        r = rng.random
        traits = self.traits
        stored = CONSENT_STORED_RATE / 100
        tables = [(channel, lookup_table(CONSENT_MIX[channel])) for channel in CHANNELS]
        for i in range(self.random_profiles):
            age = traits.age[i]
            if traits.opted_out[i]:
                # opted out at one moment, on every channel
                when = int(r() * age)
                for channel in CHANNELS:
                    yield ConsentRow(i, channel, "denied", when)
                continue
            for channel, table in tables:
                if r() < stored:
                    yield ConsentRow(i, channel, STATUSES[table[int(r() * TABLE_SIZE)]], int(r() * age))
        position = self.random_profiles
        for scenario in self.scenarios:
            for p in scenario.profiles:
                for channel in CHANNELS:
                    if channel in p.consent:
                        yield ConsentRow(position, channel, p.consent[channel], p.created_days_ago * DAY // 3)
                position += 1

    # -- profile events ------------------------------------------------------------

    def events(self) -> Iterator[EventRow]:
        rng = self._rng("events")
        r = rng.random
        traits = self.traits
        window = EVENT_WINDOW_DAYS * DAY
        per_stage = [
            (poisson_table(EVENT_PROFILE[name][0]), lookup_table(EVENT_PROFILE[name][1])) for name in STAGE_NAMES
        ]
        currencies = [spec.currency for spec in LOCALES]
        catalogue = self._catalogue()
        n_skus = len(catalogue)
        campaigns = EMAIL_CAMPAIGNS
        paths = PAGE_PATHS
        for i in range(self.random_profiles):
            count_table, type_table = per_stage[traits.stage[i]]
            count = count_table[int(r() * TABLE_SIZE)]
            if not count:
                continue
            span = min(window, traits.age[i]) - 60
            offsets = sorted((60 + int(r() * span) for _ in range(count)), reverse=True)  # oldest first
            currency = currencies[traits.locale[i]]
            factor = CURRENCY_FACTOR.get(currency, 1.0)
            for off in offsets:
                kind = EVENT_TYPES[type_table[int(r() * TABLE_SIZE)]]
                if kind == "page_view":
                    props = f'{{"path": "{paths[int(r() * len(paths))]}"}}'
                elif kind == "email_opened":
                    props = f'{{"campaign": "{campaigns[int(r() * len(campaigns))]}"}}'
                else:
                    sku, category, price = catalogue[int(r() * n_skus)]
                    if kind == "product_viewed":
                        props = dumps({"sku": sku, "category": category, "price": _money(price * factor, currency)})
                    else:
                        items = 1 + int(r() * r() * 5)
                        value = _money(price * factor * (items + r()), currency)
                        if kind == "purchase":
                            props = dumps(
                                {
                                    "order_id": f"ord-{int(r() * 10**10):010d}",
                                    "amount": value,
                                    "currency": currency,
                                    "items": items,
                                    "sku": sku,
                                }
                            )
                        else:
                            props = dumps({"cart_value": value, "currency": currency, "items": items, "sku": sku})
                yield EventRow(i, kind, off, props, max(0, off - int(r() * 120)))
        position = self.random_profiles
        for scenario in self.scenarios:
            for p in scenario.profiles:
                for kind, days_ago, properties in p.events:
                    off = int(days_ago * DAY)
                    yield EventRow(position, kind, off, dumps(properties), max(0, off - 30))
                position += 1

    def _catalogue(self) -> list[tuple[str, str, float]]:
        rng = self._rng("catalogue")
        return [
            (f"SKU-{10000 + n}", CATEGORIES[n % len(CATEGORIES)], round(rng.uniform(4.0, 180.0), 2)) for n in range(600)
        ]

    # -- checks --------------------------------------------------------------------

    def digest(self) -> str:
        """SHA-256 over every generated row: equal for the same (seed, profiles, anchor)."""
        h = hashlib.sha256(f"{self.anchor.isoformat()}|{self.total_profiles}\n".encode())
        for stream in (self.profiles(), self.consents(), self.events()):
            for row in stream:
                h.update(repr(tuple(row)).encode())
                h.update(b"\n")
        return h.hexdigest()


def _money(amount: float, currency: str) -> float:
    if currency in ("JPY", "KRW"):
        return float(round(amount))
    return round(amount, 2)


def scenario_names() -> list[str]:
    return [s.name for s in scenario_data.SCENARIOS]


def anchor_offset_to_datetime(anchor: date, offset: int) -> datetime:
    return anchor_datetime(anchor) - timedelta(seconds=offset)
