"""The six named scenarios of PRODUCT.md §8, as data.

Every sandbox reset loads them beside the random profiles. Each scenario is a handful of
hand-written profiles with recognisable external ids (`scn-mixed-consent-001` …), their
consent per channel, their profile events, and `expected`: the rules a marketer would
preview and the figures the preview should show (the reach waterfall of PRODUCT.md §7:
matching → minus no address for the channel → minus no consent for the channel → minus
suppressed → minus regional restriction = reachable).

docs/sandbox.md states the same figures in plain English; tests/sandbox checks both the
data and the docs against `expected`, so neither can drift.

Event times are days before the reset's anchor (midnight UTC of the reset date). Events
meant to count as "within 7 days" lie at most 3 days back, so the figures hold for four
days after a reset; reset again after that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Restriction:
    """A regional restriction (audiences.RegionalRestriction) a scenario relies on."""

    region: str
    channel: str
    kind: str
    description: str


# Every reset makes sure these exist and are active in the environment, so that the
# regional-restriction scenario shows its figures: the sandbox's SMS sender is not
# registered in the Middle East and Africa.
RESTRICTIONS: tuple[Restriction, ...] = (
    Restriction(
        "MEA",
        "sms",
        "blocked",
        "SMS may not target the Middle East and Africa (sandbox scenario regional-restriction).",
    ),
)
# channel → regions it may not target
REGIONAL_RESTRICTIONS: dict[str, tuple[str, ...]] = {
    channel: tuple(r.region for r in RESTRICTIONS if r.channel == channel and r.kind == "blocked")
    for channel in sorted({r.channel for r in RESTRICTIONS})
}

Event = tuple[str, float, dict[str, Any]]  # (type, days before the anchor, properties)


@dataclass(frozen=True)
class ScenarioProfile:
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None = None
    push_token: str | None = None
    locale: str | None = "en_GB"
    country: str | None = "GB"
    region: str | None = "UK"
    lifecycle_stage: str | None = "customer"
    attributes: dict[str, Any] = field(default_factory=dict)
    # channel → status; a channel left out has no stored consent at all
    consent: dict[str, str] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    created_days_ago: int = 400


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    summary: str
    profiles: tuple[ScenarioProfile, ...]
    expected: dict[str, Any]

    def external_id(self, number: int) -> str:
        return f"scn-{self.name}-{number:03d}"

    @property
    def external_ids(self) -> list[str]:
        return [self.external_id(n) for n in range(1, len(self.profiles) + 1)]


def _tagged(name: str, **attributes: Any) -> dict[str, Any]:
    return {"scenario": name, **attributes}


def _by_scenario(name: str, *more: dict[str, Any]) -> dict[str, Any]:
    return {"all": [{"attr": "attributes.scenario", "op": "eq", "value": name}, *more]}


GRANTED_EVERYWHERE = {"email": "granted", "sms": "granted", "push": "granted", "ads": "granted"}
DENIED_EVERYWHERE = {"email": "denied", "sms": "denied", "push": "denied", "ads": "denied"}


# --- mixed-consent ----------------------------------------------------------------

_MC = "mixed-consent"
MIXED_CONSENT = Scenario(
    name=_MC,
    title="Mixed consent",
    summary="Twelve customers whose email consent is granted, denied, unknown or was never asked.",
    profiles=(
        ScenarioProfile(
            "mia.granted@example.test",
            "Mia",
            "Granted",
            attributes=_tagged(_MC, loyalty_tier="gold"),
            consent={"email": "granted", "sms": "granted", "push": "unknown", "ads": "denied"},
        ),
        ScenarioProfile(
            "noah.granted@example.test",
            "Noah",
            "Granted",
            locale="de_DE",
            country="DE",
            region="EU",
            attributes=_tagged(_MC),
            consent={"email": "granted", "sms": "denied"},
        ),
        ScenarioProfile(
            "olivia.granted@example.test",
            "Olivia",
            "Granted",
            locale="en_US",
            country="US",
            region="NA",
            attributes=_tagged(_MC),
            consent={"email": "granted", "push": "granted"},
        ),
        ScenarioProfile(
            "liam.granted@example.test", "Liam", "Granted", attributes=_tagged(_MC), consent={"email": "granted"}
        ),
        ScenarioProfile(
            "emma.granted@example.test",
            "Emma",
            "Granted",
            locale="fr_FR",
            country="FR",
            region="EU",
            attributes=_tagged(_MC),
            consent={"email": "granted", "ads": "granted"},
        ),
        ScenarioProfile(
            "lucas.denied@example.test",
            "Lucas",
            "Denied",
            attributes=_tagged(_MC),
            consent={"email": "denied", "sms": "granted"},
        ),
        ScenarioProfile(
            "ava.denied@example.test",
            "Ava",
            "Denied",
            locale="en_US",
            country="US",
            region="NA",
            attributes=_tagged(_MC),
            consent={"email": "denied"},
        ),
        ScenarioProfile(
            "leo.denied@example.test",
            "Leo",
            "Denied",
            locale="de_DE",
            country="DE",
            region="EU",
            attributes=_tagged(_MC),
            consent={"email": "denied", "push": "granted"},
        ),
        ScenarioProfile(
            "isla.unknown@example.test",
            "Isla",
            "Unknown",
            attributes=_tagged(_MC),
            consent={"email": "unknown", "sms": "unknown"},
        ),
        ScenarioProfile(
            "ethan.unknown@example.test",
            "Ethan",
            "Unknown",
            locale="en_US",
            country="US",
            region="NA",
            attributes=_tagged(_MC),
            consent={"email": "unknown"},
        ),
        ScenarioProfile(
            "zara.never-asked@example.test",
            "Zara",
            "Never-Asked",
            lifecycle_stage="lead",
            attributes=_tagged(_MC),
            consent={},
        ),
        ScenarioProfile(
            "omar.sms-only@example.test", "Omar", "Sms-Only", attributes=_tagged(_MC), consent={"sms": "granted"}
        ),
    ),
    expected={
        "rules": _by_scenario(_MC),
        "channel": "email",
        "matching": 12,
        "removed_no_address": 0,
        "removed_no_consent": 7,
        "removed_suppressed": 0,
        "removed_regional_restriction": 0,
        "reachable": 5,
        # the preview's breakdown by email consent: no stored consent shows as unknown
        "consent_breakdown": {"granted": 5, "denied": 3, "unknown": 4},
    },
)

# --- duplicate-profile ------------------------------------------------------------

_DP = "duplicate-profile"
DUPLICATE_PROFILE = Scenario(
    name=_DP,
    title="Duplicate profile",
    summary="The same person twice under two external ids, with the same email cased differently; "
    "plus one other person.",
    profiles=(
        ScenarioProfile(
            "robin.twice@example.test",
            "Robin",
            "Twice",
            phone="+447700900101",
            attributes=_tagged(_DP, signup_source="web"),
            consent={"email": "granted", "sms": "granted"},
            events=(
                (
                    "purchase",
                    12,
                    {"order_id": "ord-scn-0001", "amount": 42.5, "currency": "GBP", "items": 1, "sku": "SKU-10001"},
                ),
            ),
            created_days_ago=700,
        ),
        ScenarioProfile(
            "Robin.TWICE@Example.test",
            "Robin",
            "Twice",
            phone=None,
            attributes=_tagged(_DP, signup_source="store"),
            consent={"email": "granted"},
            created_days_ago=30,
        ),
        ScenarioProfile(
            "sam.once@example.test",
            "Sam",
            "Once",
            attributes=_tagged(_DP, signup_source="web"),
            consent={"email": "granted"},
        ),
    ),
    expected={
        "rules": _by_scenario(_DP),
        "channel": "email",
        "matching": 3,
        "removed_no_address": 0,
        "removed_no_consent": 0,
        "removed_suppressed": 0,
        "removed_regional_restriction": 0,
        "reachable": 3,
        # emails compared case-insensitively: two profiles are one person
        "distinct_emails": 2,
    },
)

# --- regional-restriction ---------------------------------------------------------

_RR = "regional-restriction"
REGIONAL_RESTRICTION = Scenario(
    name=_RR,
    title="Regional restriction",
    summary="Eight SMS subscribers; three of them in a region SMS may not target (MEA).",
    profiles=(
        ScenarioProfile(
            "amelia.sms@example.test",
            "Amelia",
            "Texter",
            phone="+447700900201",
            attributes=_tagged(_RR),
            consent={"email": "granted", "sms": "granted"},
        ),
        ScenarioProfile(
            "jack.sms@example.test",
            "Jack",
            "Texter",
            phone="+447700900202",
            attributes=_tagged(_RR),
            consent={"sms": "granted"},
        ),
        ScenarioProfile(
            "harry.sms@example.test",
            "Harry",
            "Texter",
            phone="+447700900203",
            attributes=_tagged(_RR),
            consent={"sms": "granted", "push": "denied"},
        ),
        ScenarioProfile(
            "grace.sms@example.com",
            "Grace",
            "Texter",
            phone="+12125550101",
            locale="en_US",
            country="US",
            region="NA",
            attributes=_tagged(_RR),
            consent={"sms": "granted"},
        ),
        ScenarioProfile(
            "mason.sms@example.com",
            "Mason",
            "Texter",
            phone="+14165550102",
            locale="en_CA",
            country="CA",
            region="NA",
            attributes=_tagged(_RR),
            consent={"sms": "granted", "email": "denied"},
        ),
        ScenarioProfile(
            "layla.sms@example.test",
            "Layla",
            "Haddad",
            phone="+447700900206",
            locale="ar_AE",
            country="AE",
            region="MEA",
            attributes=_tagged(_RR),
            consent={"sms": "granted"},
        ),
        ScenarioProfile(
            "yusuf.sms@example.test",
            "Yusuf",
            "Haddad",
            phone="+447700900207",
            locale="ar_AE",
            country="AE",
            region="MEA",
            attributes=_tagged(_RR),
            consent={"sms": "granted", "email": "granted"},
        ),
        ScenarioProfile(
            "noa.sms@example.test",
            "Noa",
            "Levi",
            phone="+447700900208",
            locale="he_IL",
            country="IL",
            region="MEA",
            attributes=_tagged(_RR),
            consent={"sms": "denied", "email": "granted"},
        ),
    ),
    expected={
        "rules": _by_scenario(_RR),
        "channel": "sms",
        "matching": 8,
        "removed_no_address": 0,
        "removed_no_consent": 1,
        "removed_suppressed": 0,
        "removed_regional_restriction": 2,
        "reachable": 5,
    },
)

# --- cart-abandonment -------------------------------------------------------------

_CA = "cart-abandonment"


def _cart(days_ago: float, value: float = 89.90, sku: str = "SKU-10042") -> Event:
    return ("cart_abandoned", days_ago, {"cart_value": value, "currency": "GBP", "items": 2, "sku": sku})


def _purchase(days_ago: float, amount: float = 89.90, order: str = "ord-scn-0100") -> Event:
    return (
        "purchase",
        days_ago,
        {"order_id": order, "amount": amount, "currency": "GBP", "items": 2, "sku": "SKU-10042"},
    )


CART_ABANDONMENT = Scenario(
    name=_CA,
    title="Cart abandonment",
    summary="Eleven shoppers: seven abandoned a cart in the last 7 days and have not bought since, two bought "
    "after abandoning, one abandoned weeks ago, one only browsed.",
    profiles=(
        ScenarioProfile(
            "ruby.cart@example.test",
            "Ruby",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(_cart(1.25),),
        ),
        ScenarioProfile(
            "oscar.cart@example.test",
            "Oscar",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "granted", "sms": "granted"},
            events=(_cart(2.5, 34.00, "SKU-10007"),),
        ),
        ScenarioProfile(
            "freya.cart@example.test",
            "Freya",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(("page_view", 3.0, {"path": "/sale"}), _cart(2.75, 150.00)),
        ),
        ScenarioProfile(
            "arthur.cart@example.test",
            "Arthur",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(("product_viewed", 1.6, {"sku": "SKU-10042", "category": "shoes", "price": 44.95}), _cart(1.5)),
        ),
        ScenarioProfile(
            "ivy.cart@example.test",
            "Ivy",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(_cart(2.0), _cart(0.5, 120.00)),
        ),
        ScenarioProfile(
            "theo.bought@example.test",
            "Theo",
            "Bought",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(_cart(2.5), _purchase(1.25, order="ord-scn-0106")),
        ),
        ScenarioProfile(
            "elsie.bought@example.test",
            "Elsie",
            "Bought",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(_cart(3.0), _purchase(0.5, order="ord-scn-0107")),
        ),
        ScenarioProfile(
            "henry.no-email@example.test",
            "Henry",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "denied", "push": "granted"},
            events=(_cart(2.0),),
        ),
        ScenarioProfile(
            "poppy.unknown@example.test",
            "Poppy",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "unknown"},
            events=(_cart(1.0),),
        ),
        ScenarioProfile(
            "alfie.old-cart@example.test",
            "Alfie",
            "Basket",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(_cart(20.0),),
        ),
        ScenarioProfile(
            "rosie.browser@example.test",
            "Rosie",
            "Browser",
            lifecycle_stage="prospect",
            attributes=_tagged(_CA),
            consent={"email": "granted"},
            events=(("page_view", 1.0, {"path": "/new"}),),
        ),
    ),
    expected={
        "rules": _by_scenario(
            _CA,
            {"event": "cart_abandoned", "within_days": 7, "min_count": 1},
            {"not": {"event": "purchase", "within_days": 7, "min_count": 1}},
        ),
        "channel": "email",
        "matching": 7,
        "removed_no_address": 0,
        "removed_no_consent": 2,
        "removed_suppressed": 0,
        "removed_regional_restriction": 0,
        "reachable": 5,
    },
)

# --- locale-and-null-edge-cases ---------------------------------------------------

_LN = "locale-and-null-edge-cases"
LOCALE_AND_NULL_EDGE_CASES = Scenario(
    name=_LN,
    title="Locale and null edge cases",
    summary="Ten profiles with empty fields, unusual locales, non-Latin and emoji names, empty attributes "
    "and text that needs escaping.",
    profiles=(
        # only an external id: every optional field empty, attributes {}, no consent
        ScenarioProfile(
            None, None, None, locale=None, country=None, region=None, lifecycle_stage=None, attributes={}, consent={}
        ),
        ScenarioProfile(
            "lucja.wasowska@example.test",
            "Łucja",
            "Wąsowska-Żółć",
            locale="pl_PL",
            country="PL",
            region="EU",
            attributes=_tagged(_LN),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "sakura.yamada@example.test",
            "さくら",
            "山田",
            locale="ja_JP",
            country="JP",
            region="APAC",
            attributes=_tagged(_LN, loyalty_tier="silver"),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "layla.alfassi@example.test",
            "ليلى",
            "الفاسي",
            locale="ar_AE",
            country="AE",
            region="MEA",
            attributes=_tagged(_LN),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "valentina.ruiz@example.test",
            "Valentina",
            "Ruiz",
            locale="es_419",
            country="MX",
            region="LATAM",
            attributes=_tagged(_LN),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "wei.chen@example.test",
            "偉",
            "陳",
            locale="zh_Hant_TW",
            country="TW",
            region="APAC",
            attributes=_tagged(_LN),
            consent={"email": "unknown"},
        ),
        ScenarioProfile(
            "alex.nowhere@example.test",
            "Alex",
            "Nowhere",
            locale="und",
            country=None,
            region=None,
            attributes=_tagged(_LN),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "max.rocket@example.test",
            "Max 🚀",
            "Nguyễn-O'Connor",
            locale="en_US",
            country="US",
            region="NA",
            attributes=_tagged(_LN, loyalty_tier=None, newsletter_topics=[], lifetime_value=0),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "Chloe.Case@EXAMPLE.test",
            "chloe",
            "CASE",
            phone=None,
            locale="EN-gb",
            country="GB",
            region="UK",
            lifecycle_stage=None,
            attributes=_tagged(_LN),
            consent={"email": "granted"},
        ),
        ScenarioProfile(
            "dan.escape@example.test",
            'Dan "The Tab"',
            "Back\\slash\tTab",
            locale="en_GB",
            attributes=_tagged(_LN, note="line one\nline two\ttabbed \\ backslash, 'quotes' \"too\""),
            consent={"email": "granted"},
            events=(("page_view", 1.0, {"path": "/search?q=50%25+off&tab=\t"}),),
        ),
    ),
    expected={
        # One profile has empty attributes, so `attributes.scenario` finds only 9: select by external id.
        "rules": {"all": [{"attr": "external_id", "op": "in", "value": [f"scn-{_LN}-{n:03d}" for n in range(1, 11)]}]},
        "channel": "email",
        "matching": 10,
        # -001 has no email address (and no consent: it leaves at the first step that applies)
        "removed_no_address": 1,
        "removed_no_consent": 1,
        "removed_suppressed": 0,
        "removed_regional_restriction": 0,
        "reachable": 8,
    },
)

# --- opted-out-everywhere ---------------------------------------------------------

_OO = "opted-out-everywhere"
OPTED_OUT_EVERYWHERE = Scenario(
    name=_OO,
    title="Opted out everywhere",
    summary="Five profiles denied on every channel, including a loyal customer who bought this week.",
    profiles=(
        ScenarioProfile(
            "pat.optout@example.test",
            "Pat",
            "Optout",
            phone="+447700900301",
            lifecycle_stage="loyal",
            attributes=_tagged(_OO, loyalty_tier="platinum", lifetime_value=2310.4),
            consent=DENIED_EVERYWHERE,
            events=(_purchase(2.0, amount=250.0, order="ord-scn-0501"),),
        ),
        ScenarioProfile(
            "kim.optout@example.com",
            "Kim",
            "Optout",
            phone="+13125550103",
            locale="en_US",
            country="US",
            region="NA",
            attributes=_tagged(_OO),
            consent=DENIED_EVERYWHERE,
        ),
        ScenarioProfile(
            "jo.optout@example.test",
            "Jo",
            "Optout",
            locale="de_DE",
            country="DE",
            region="EU",
            lifecycle_stage="lapsed",
            attributes=_tagged(_OO),
            consent=DENIED_EVERYWHERE,
        ),
        ScenarioProfile(
            "sasha.optout@example.test",
            "Sasha",
            "Optout",
            lifecycle_stage="lead",
            attributes=_tagged(_OO),
            consent=DENIED_EVERYWHERE,
            events=(_cart(1.0),),
        ),
        ScenarioProfile(
            "ren.optout@example.test",
            "Ren",
            "Optout",
            locale="ja_JP",
            country="JP",
            region="APAC",
            attributes=_tagged(_OO),
            consent=DENIED_EVERYWHERE,
        ),
    ),
    expected={
        "rules": _by_scenario(_OO),
        "channel": "email",
        "matching": 5,
        "removed_no_address": 0,
        "removed_no_consent": 5,
        "removed_suppressed": 0,
        "removed_regional_restriction": 0,
        "reachable": 0,
    },
)

SCENARIOS: tuple[Scenario, ...] = (
    MIXED_CONSENT,
    DUPLICATE_PROFILE,
    REGIONAL_RESTRICTION,
    CART_ABANDONMENT,
    LOCALE_AND_NULL_EDGE_CASES,
    OPTED_OUT_EVERYWHERE,
)
SCENARIOS_BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}
