"""Deterministic demo data for the three bundled source systems.

The data reproduces the seed report (Taizhou Science & Technology Bureau, 2023):
606 work-permit applications received in 2023 (593 approved, 13 denied) against
547 in 2022 (542 / 5), 12 double-random joint inspections, 13 certified officers
and 6 auxiliary staff, 3 normative documents, 1 repealed, 40 government
contracts reviewed. A 2024 slice up to :data:`DEMO_TODAY` holds one missed
filing deadline and one due within days, so the scorecard has something to say.

Everything is a pure function of fixed seeds. ``scale`` adds synthetic records
dated 2015-2021 (so the seed years never move); a synthetic record's content and
change time are a pure function of its index, so a million of them cost no
memory until served. ``malformed`` adds records that break the contract, each
listed with its reason in :func:`malformed_records`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any

DEMO_TODAY = date(2024, 5, 20)

DEMO_PERMITS_TOKEN = "demo-permits-token"
DEMO_ENFORCEMENT_API_KEY = "demo-enforcement-key"
DEMO_DOCREVIEW_USER = "demo"
DEMO_DOCREVIEW_PASSWORD = "demo-docreview"

# Asia/Shanghai has had no daylight saving since 1991: a fixed +08:00 is exact for every
# date the demo serves, and far cheaper than zoneinfo when formatting a million records.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
_LOCAL_OFFSET_S = 8 * 3600
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Facts the tests and the CLI can name.
FILED_2024_DOC_ID = "DOC-2024-001"
MISSED_FILING_DOC_ID = "DOC-2024-002"  # issued 2024-03-05, deadline 2024-04-04, never filed
DUE_SOON_DOC_ID = "DOC-2024-003"  # issued 2024-04-23, deadline 2024-05-23, not filed yet
DRAFT_DOC_ID = "DOC-2024-004"
DELETED_DOC_ID = "DOC-2024-005"  # served as a tombstone
REPEALED_DOC_ID = "DOC-2019-004"  # issued 2019, repealed in the 2023 clean-up
FIRST_2023_PERMIT_ID = "WP2023-000001"  # received 2023-01-01 01:20 local, sent as 2022-12-31Z
FIRST_2022_PERMIT_ID = "WP2022-000001"  # received 2022-01-01 07:40 local, sent as 2021-12-31Z
OFFICER_IDS = tuple(f"ZF-{n:03d}" for n in range(1, 14))
AUXILIARY_IDS = tuple(f"FZ-{n:03d}" for n in range(1, 7))
OFFICER_WITHOUT_EXPIRY = "ZF-013"

# Latest change time of the seed data: every record changed before this (DEMO_TODAY 18:00).
DATA_HORIZON = datetime.combine(DEMO_TODAY, time(18, 0), SHANGHAI)

SYSTEMS = ("permits", "enforcement", "docreview")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# --- working days (calendar-cn.yaml; Monday to Friday outside the years it lists) -----------

_HOLIDAYS = frozenset(
    date.fromisoformat(d)
    for d in _words("""
    2023-01-02 2023-01-23 2023-01-24 2023-01-25 2023-01-26 2023-01-27 2023-04-05 2023-05-01
    2023-05-02 2023-05-03 2023-06-22 2023-06-23 2023-09-29 2023-10-02 2023-10-03 2023-10-04
    2023-10-05 2023-10-06 2024-01-01 2024-02-12 2024-02-13 2024-02-14 2024-02-15 2024-02-16
    2024-04-04 2024-04-05 2024-05-01 2024-05-02 2024-05-03 2024-06-10 2024-09-16 2024-09-17
    2024-10-01 2024-10-02 2024-10-03 2024-10-04 2024-10-07""")
)
_MAKEUP_WORKDAYS = frozenset(
    date.fromisoformat(d)
    for d in _words("""
    2023-01-28 2023-01-29 2023-04-23 2023-05-06 2023-06-25 2023-10-07 2023-10-08 2024-02-04
    2024-02-18 2024-04-07 2024-04-28 2024-05-11 2024-09-14 2024-09-29 2024-10-12""")
)


def is_workday(day: date) -> bool:
    """A working day by the bundled calendar (make-up days work, holidays do not)."""
    if day in _MAKEUP_WORKDAYS:
        return True
    return day not in _HOLIDAYS and day.weekday() < 5


def add_workdays(day: date, n: int) -> date:
    """The n-th working day after ``day`` (``day`` itself when n is 0)."""
    while n > 0:
        day += timedelta(days=1)
        if is_workday(day):
            n -= 1
    return day


def working_days(a: date, b: date) -> int:
    """Working days d with a < d <= b, as ``interface.md`` counts them."""
    return sum(1 for k in range(1, (b - a).days + 1) if is_workday(a + timedelta(days=k)))


def _workdays_in(start: date, end: date) -> list[date]:
    return [
        start + timedelta(days=k)
        for k in range((end - start).days + 1)
        if is_workday(start + timedelta(days=k))
    ]


# --- time formats ----------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)


# Formatting a million change times is the hot path of a large sync: look the pieces up.
_HHMM = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_SS = tuple(f":{s:02d}" for s in range(60))
_TABLE_FIRST_DAY = date(2014, 1, 1).toordinal() - _EPOCH_ORDINAL
_DAYS = tuple(
    date.fromordinal(_EPOCH_ORDINAL + _TABLE_FIRST_DAY + n).isoformat() for n in range(12 * 366)
)


def _day_text(day_number: int) -> str:
    """``YYYY-MM-DD`` of a day number since 1970-01-01."""
    n = day_number - _TABLE_FIRST_DAY
    if 0 <= n < len(_DAYS):
        return _DAYS[n]
    return date.fromordinal(_EPOCH_ORDINAL + day_number).isoformat()


def _clock(seconds_of_day: int) -> str:
    return _HHMM[seconds_of_day // 60] + _SS[seconds_of_day % 60]


def iso_local(epoch_s: int) -> str:
    """``2023-03-01T09:12:00+08:00`` for an instant in epoch seconds."""
    t = epoch_s + _LOCAL_OFFSET_S
    return _day_text(t // 86400) + "T" + _clock(t % 86400) + "+08:00"


def iso_utc(epoch_s: int) -> str:
    """``2023-03-01T01:12:00Z`` for an instant in epoch seconds."""
    return _day_text(epoch_s // 86400) + "T" + _clock(epoch_s % 86400) + "Z"


def local_stamp(epoch_s: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Asia/Shanghai, the enforcement system's time format."""
    t = epoch_s + _LOCAL_OFFSET_S
    return _day_text(t // 86400) + " " + _clock(t % 86400)


def local_date_of(epoch_s: int) -> date:
    """The Asia/Shanghai calendar date of an instant."""
    return date.fromordinal(_EPOCH_ORDINAL + (epoch_s + _LOCAL_OFFSET_S) // 86400)


def _at(day: date, seconds_of_day: int) -> int:
    """Epoch seconds of a local date plus seconds since local midnight."""
    return (day.toordinal() - _EPOCH_ORDINAL) * 86400 - _LOCAL_OFFSET_S + seconds_of_day


def iso(epoch_s: int, utc: bool) -> str:
    return iso_utc(epoch_s) if utc else iso_local(epoch_s)


# --- unified social credit codes (GB 32100-2015) -------------------------------------------

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_TAIZHOU_DIVISIONS = ("331002", "331003", "331004", "331081", "331082", "331083", "331022")


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    """18 characters from the code's alphabet with a correct check character."""
    return (
        len(code) == 18
        and all(c in _USCC_CHARS for c in code)
        and uscc_check_char(code[:17]) == code[17]
    )


def make_uscc(rng: random.Random) -> str:
    """A well-formed enterprise code registered in Taizhou (organisation code checked too)."""
    org8 = "".join(rng.choice("0123456789") for _ in range(8))
    org_check = 11 - sum(int(c) * w for c, w in zip(org8, _ORG_WEIGHTS, strict=True)) % 11
    org9 = org8 + {10: "X", 11: "0"}.get(org_check, str(org_check))
    first17 = "91" + rng.choice(_TAIZHOU_DIVISIONS) + org9
    return first17 + uscc_check_char(first17)


# --- reference tables --------------------------------------------------------------------------

_EMPLOYER_NAMES = (
    "浙江莫里尼机车有限公司",
    "台州精工数控机床股份有限公司",
    "台州市黄岩精密模具科技有限公司",
    "浙江温岭泵业智造有限公司",
    "台州路桥智能装备有限公司",
    "浙江玉环阀门科技有限公司",
    "临海市医化新材料有限公司",
    "台州市椒江缝制设备有限公司",
    "浙江天台汽车用品有限公司",
    "仙居县生物医药科技有限公司",
    "三门县海洋生物科技有限公司",
    "台州湾新区航空科技有限公司",
    "台州市光伏能源科技有限公司",
    "温岭市鞋业智造有限公司",
    "台州瑞丰化工新材料有限公司",
    "台州市智能卫浴科技有限公司",
    "浙江台州国际文化交流有限公司",
    "台州市海正生物制药有限公司",
    "浙江吉台汽车研究院有限公司",
    "台州市博创电子信息有限公司",
)
_TRAINING_INSTITUTIONS = (
    "台州市椒江区启智科创培训学校",
    "台州市黄岩区星火编程培训中心",
    "台州市路桥区未来机器人培训学校",
    "临海市创想科技培训中心",
    "温岭市小小发明家科普培训学校",
)
_MAKER_SPACE = "台州市黄岩区橘乡星创天地"
_FIRST_NAMES = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda David Elizabeth William Barbara "
    "Thomas Susan Daniel Jessica Matteo Giulia Lukas Anna Hiroshi Yuki Minjun Seoyeon Pierre "
    "Camille Ivan Olga Arjun Priya Ahmed Fatima Carlos Lucia Pieter Sanne Oleksandr Nguyen"
)
_LAST_NAMES = _words(
    "Smith Johnson Brown Taylor Wilson Miller Davis Clark Rossi Bianchi Muller Schmidt "
    "Tanaka Sato Kim Park Martin Bernard Ivanov Petrov Sharma Patel Khan Garcia Lopez "
    "Jansen DeVries Kovalenko Tran Anderson Moreau Costa Silva Novak Svensson"
)
_NATIONALITIES = _words(
    "USA GBR DEU ITA JPN KOR FRA RUS IND PAK AUS CAN ESP NLD UKR BRA ZAF SGP MYS PHL THA VNM "
    "TUR EGY NGA MEX POL CZE BEL SWE NZL IRL"
)
_PERMIT_TYPES = ("new",) * 11 + ("extension",) * 6 + ("change",) * 2 + ("cancellation",)
_CATEGORIES = ("A",) * 2 + ("B",) * 6 + ("C",) * 2
_DRAFTING_UNITS = (
    "台州市科学技术局",
    "台州市科学技术局办公室",
    "台州市科学技术局高新技术处",
    "台州市科学技术局科技合作与人才处",
    "台州市科学技术局政策法规处",
)
_CONTRACT_TOPICS = (
    "科技计划项目任务书",
    "科技创新券服务采购",
    "台州科技大市场运营服务",
    "科技成果转化基金委托管理",
    "高新技术企业培育服务",
    "外国人才服务中心运营",
    "科技企业孵化器绩效评估服务",
    "产学研合作共建",
    "科技统计调查服务",
    "科技项目财务审计服务",
)


def _employers() -> list[tuple[str, str]]:
    rng = random.Random("rulewatch-demo-employers")
    return [(name, make_uscc(rng)) for name in _EMPLOYER_NAMES]


EMPLOYERS = tuple(_employers())

# --- records as served ---------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """One served version of a record: its change time, natural key and JSON body."""

    instant_ms: int
    key: str
    record: dict[str, Any]
    is_tombstone: bool = False


@dataclass(frozen=True)
class MalformedRecord:
    """A record that breaks its source's contract, and why (for tests to assert)."""

    system: str
    stream: str  # "permits.applications", "enforcement.inspections", ...
    key: str | None  # the natural key as served; None when missing
    kind: str  # missing_key, empty_key, bad_code, bad_date, bad_time, bad_role
    reason: str
    record: dict[str, Any] = field(compare=False, repr=False)
    instant_ms: int = field(default=0, compare=False)


def _applicant(rng: random.Random) -> dict[str, str]:
    return {
        "name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        "passport_no": rng.choice("EGKPXMN") + f"{rng.randrange(10**8):08d}",
        "nationality": rng.choice(_NATIONALITIES),
    }


def _permit_versions(
    application_id: str,
    base: dict[str, Any],
    received_s: int,
    final: tuple[str, int | None, int] | None,
    rng: random.Random,
) -> list[Version]:
    """The received version, then (optionally) the final status at its time."""
    first_update = received_s + rng.randrange(60, 1200)
    v1 = {
        **base,
        "decided_at": None,
        "status": "received",
        "updated_at": iso(first_update, rng.random() < 0.3),
    }
    versions = [Version(first_update * 1000, application_id, _ordered_permit(v1))]
    if final is not None:
        status, decided_s, event_s = final
        update = max(event_s + rng.randrange(60, 1800), first_update + 1)
        v2 = {
            **base,
            "decided_at": None if decided_s is None else iso(decided_s, rng.random() < 0.3),
            "status": status,
            "updated_at": iso(update, rng.random() < 0.3),
        }
        versions.append(Version(update * 1000, application_id, _ordered_permit(v2)))
    return versions


_PERMIT_FIELDS = (
    "application_id",
    "received_at",
    "decided_at",
    "status",
    "permit_type",
    "category",
    "employer_credit_code",
    "employer_name",
    "applicant",
    "joint_residence_permit",
    "promised_days",
    "updated_at",
)


def _ordered_permit(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in _PERMIT_FIELDS if k in record}


def _receipt(rng: random.Random, day: date) -> tuple[int, bool]:
    """A receipt time on ``day``: office hours, or an online filing before 08:00 local."""
    if rng.random() < 0.08:
        return _at(day, rng.randrange(5 * 60, 7 * 3600 + 55 * 60)), True  # previous UTC day
    return _at(day, rng.randrange(8 * 3600 + 30 * 60, 17 * 3600 + 30 * 60)), rng.random() < 0.3


def _permits_year(year: int, received: int, denied: int) -> list[Version]:
    """A whole year of applications, every one decided within its promised days that year."""
    rng = random.Random(f"rulewatch-demo-permits-{year}")
    days = _workdays_in(date(year, 1, 3), date(year, 12, 20))
    receipts = sorted(_receipt(rng, rng.choice(days)) for _ in range(received - 1))
    # The year's first application came in online just after midnight: its UTC form is
    # dated the previous year, its local date is in this one.
    first = _at(date(year, 1, 1), 1 * 3600 + 20 * 60 if year == 2023 else 7 * 3600 + 40 * 60)
    receipts.insert(0, (first, True))
    denied_at = set(rng.sample(range(1, received), denied))
    versions: list[Version] = []
    for seq, (received_s, utc) in enumerate(receipts, start=1):
        application_id = f"WP{year}-{seq:06d}"
        base = _permit_base(rng, application_id, received_s, utc)
        promised = base["promised_days"]
        day = local_date_of(received_s)
        late_in_day = (received_s + _LOCAL_OFFSET_S) % 86400 > 15 * 3600
        k = rng.randint(1 if late_in_day else 0, min(5, promised))
        decided_day = add_workdays(day, k)
        decided_s = _at(decided_day, rng.randrange(9 * 3600, 17 * 3600))
        decided_s = max(decided_s, received_s + 1800)
        assert local_date_of(decided_s).year == year
        status = "denied" if seq - 1 in denied_at else "approved"
        versions += _permit_versions(
            application_id, base, received_s, (status, decided_s, decided_s), rng
        )
    return versions


def _permit_base(
    rng: random.Random, application_id: str, received_s: int, utc: bool
) -> dict[str, Any]:
    employer, credit_code = rng.choice(EMPLOYERS)
    category = rng.choice(_CATEGORIES)
    return {
        "application_id": application_id,
        "received_at": iso(received_s, utc),
        "permit_type": rng.choice(_PERMIT_TYPES),
        "category": category,
        "employer_credit_code": credit_code,
        "employer_name": employer,
        "applicant": _applicant(rng),
        "joint_residence_permit": rng.random() < 0.9,
        "promised_days": 5 if category == "A" else 10,
    }


def _permits_2024() -> list[Version]:
    """2024 up to DEMO_TODAY: mostly decided on time, two late, two withdrawn, some open."""
    rng = random.Random("rulewatch-demo-permits-2024")
    days = _workdays_in(date(2024, 1, 2), DEMO_TODAY)
    receipts = [_receipt(rng, rng.choice(days[:-1])) for _ in range(227)]
    receipts += [(_at(DEMO_TODAY, 8 * 3600 + 2400 * n), n == 1) for n in range(1, 4)]  # today
    receipts.sort()
    horizon_s = int(DATA_HORIZON.timestamp())
    withdrawn = {37, 141}
    late = {58, 96}
    denied = {12, 49, 88, 120, 163, 190}
    versions: list[Version] = []
    for seq, (received_s, utc) in enumerate(receipts, start=1):
        application_id = f"WP2024-{seq:06d}"
        base = _permit_base(rng, application_id, received_s, utc)
        day = local_date_of(received_s)
        promised = base["promised_days"]
        if seq in late:
            k = promised + 3
        else:
            late_in_day = (received_s + _LOCAL_OFFSET_S) % 86400 > 15 * 3600
            k = rng.randint(1 if late_in_day else 0, min(5, promised))
        decided_s = max(
            _at(add_workdays(day, k), rng.randrange(9 * 3600, 17 * 3600)), received_s + 1800
        )
        final: tuple[str, int | None, int] | None
        if seq in withdrawn:
            final = ("withdrawn", None, _at(add_workdays(day, 2), 10 * 3600))
        elif decided_s <= horizon_s - 3600:
            final = ("denied" if seq in denied else "approved", decided_s, decided_s)
        elif day < DEMO_TODAY:
            review_s = min(_at(add_workdays(day, 1), 9 * 3600 + 1800), horizon_s - 3600)
            final = ("under_review", None, max(review_s, received_s + 1800))
        else:
            final = None
        versions += _permit_versions(application_id, base, received_s, final, rng)
    assert all(v.instant_ms <= horizon_s * 1000 for v in versions)
    return versions


def _inspection_record(
    inspection_no: str,
    task_type: str,
    joint: bool,
    target: tuple[str, str],
    risk: str | None,
    inspected_on: date,
    officers: list[str],
    outcome: str,
    published_on: date | None,
    modified_s: int,
) -> dict[str, Any]:
    return {
        "inspection_no": inspection_no,
        "task_type": task_type,
        "joint": joint,
        "target_credit_code": target[1],
        "target_name": target[0],
        "credit_risk_level": risk,
        "credit_rule_applied": task_type == "double_random",
        "inspected_on": inspected_on.isoformat(),
        "officers": [{"officer_id": o, "certified": True} for o in officers],
        "outcome": outcome,
        "published": published_on is not None,
        "published_on": None if published_on is None else published_on.isoformat(),
        "modified": local_stamp(modified_s),
    }


def _inspections() -> list[Version]:
    """2022, the seed's 2023 (12 double-random, 5 + 1 special, 1 routine) and 2024."""
    rng = random.Random("rulewatch-demo-inspections")
    enterprises = list(EMPLOYERS)
    training = [(name, make_uscc(rng)) for name in _TRAINING_INSTITUTIONS]
    maker_space = (_MAKER_SPACE, make_uscc(rng))
    plan: list[tuple[int, str, bool, tuple[str, str], str | None, date, str | None]] = []
    for d in _words(
        "2022-03-15 2022-03-16 2022-04-19 2022-05-17 2022-06-14 2022-07-12 2022-08-16 "
        "2022-09-13 2022-10-18 2022-11-15"
    ):
        plan.append((2022, "double_random", True, rng.choice(enterprises), "B", _d(d), None))
    plan.append((2022, "special", True, rng.choice(enterprises), None, _d("2022-06-21"), None))
    plan.append((2022, "special", False, maker_space, None, _d("2022-08-23"), None))
    plan.append((2022, "complaint", False, rng.choice(enterprises), "C", _d("2022-11-22"), None))
    # 2023 as the seed tells it: 12 enterprises in cross-department double-random inspections
    # (浙江莫里尼机车有限公司 among them), the National Day special checks of 5 training
    # institutions, one check of foreigners' employment, one of a provincial maker space.
    dates_2023 = _words(
        "2023-04-18 2023-04-19 2023-05-16 2023-05-17 2023-06-13 2023-06-14 2023-07-11 "
        "2023-08-15 2023-09-12 2023-10-17 2023-11-14 2023-11-15"
    )
    for target, d in zip(enterprises[:12], dates_2023, strict=True):
        plan.append((2023, "double_random", True, target, rng.choice("AABBBC"), _d(d), None))
    for target, d in zip(
        training,
        ("2023-09-30", "2023-10-01", "2023-10-02", "2023-10-03", "2023-10-04"),
        strict=True,
    ):
        plan.append((2023, "special", True, target, None, _d(d), None))
    plan.append((2023, "special", True, enterprises[16], None, _d("2023-06-20"), None))
    plan.append((2023, "routine", False, maker_space, None, _d("2023-08-22"), None))
    for d in ("2024-03-19", "2024-04-16", "2024-04-17"):
        plan.append((2024, "double_random", True, rng.choice(enterprises), "B", _d(d), None))
    plan.append((2024, "special", True, enterprises[16], None, _d("2024-04-24"), None))
    plan.append((2024, "routine", False, maker_space, None, _d("2024-05-09"), None))
    plan.append((2024, "double_random", True, enterprises[3], "C", _d("2024-05-16"), "pending"))

    versions: list[Version] = []
    seq_by_year: dict[int, int] = {}
    for year, task_type, joint, target, risk, inspected_on, forced in plan:
        seq_by_year[year] = seq_by_year.get(year, 0) + 1
        inspection_no = f"JC-{year}-{seq_by_year[year]:04d}"
        officers = rng.sample(OFFICER_IDS, rng.choice((2, 2, 3)))
        outcome = forced or rng.choice(("compliant",) * 5 + ("rectification_ordered",))
        first_s = _at(inspected_on, rng.randrange(17 * 3600, 18 * 3600))
        args = (inspection_no, task_type, joint, target, risk, inspected_on, officers)
        v1 = _inspection_record(*args, "pending", None, first_s)
        versions.append(Version(first_s * 1000, inspection_no, v1))
        if forced == "pending":
            continue
        k = rng.randint(1, 3)
        while k > 1 and (add_workdays(inspected_on, k) - inspected_on).days > 7:
            k -= 1  # published within a week, holidays or not
        published_on = add_workdays(inspected_on, k)
        assert (published_on - inspected_on).days <= 7
        second_s = _at(published_on, rng.randrange(10 * 3600, 16 * 3600))
        v2 = _inspection_record(*args, outcome, published_on, second_s)
        versions.append(Version(second_s * 1000, inspection_no, v2))
    return versions


def _d(text: str) -> date:
    return date.fromisoformat(text)


_OFFICER_NAMES = _words(
    "王建国 李卫东 张海燕 陈志强 林晓峰 周丽华 吴国平 郑小军 黄建华 徐明 朱海波 胡晓东 潘伟"
)
_AUXILIARY_NAMES = _words("叶青 蒋敏 金露 杨帆 梁静 许诺")


def officers_roster() -> list[dict[str, Any]]:
    """13 certified officers (certificates to 2028-12-31, one without expiry), 6 auxiliaries."""
    roster = [
        {
            "officer_id": officer_id,
            "name": name,
            "role": "officer",
            "certified": True,
            "certificate_expires": None if officer_id == OFFICER_WITHOUT_EXPIRY else "2028-12-31",
        }
        for officer_id, name in zip(OFFICER_IDS, _OFFICER_NAMES, strict=True)
    ]
    roster += [
        {
            "officer_id": officer_id,
            "name": name,
            "role": "auxiliary",
            "certified": False,
            "certificate_expires": None,
        }
        for officer_id, name in zip(AUXILIARY_IDS, _AUXILIARY_NAMES, strict=True)
    ]
    return roster


@dataclass(frozen=True)
class _Doc:
    doc_id: str
    title: str
    doc_type: str
    issued_on: date | None
    reviewed_on: date | None
    filed_on: date | None = None  # normative documents: when filed (None: not filed)
    status: str = "in_force"
    status_changed_on: date | None = None
    deleted_on: date | None = None
    drafting_unit: str = "台州市科学技术局"
    imported: bool = False  # issued before the system went live (2022): first seen on import


def _doc_record(
    doc: _Doc, *, filed: bool, status: str, changed_on: date | None, modified_ms: int
) -> dict[str, Any]:
    filing = None
    if doc.doc_type == "normative_document" and doc.issued_on is not None:
        filing = {
            "filed": filed,
            "filed_on": doc.filed_on.isoformat() if filed and doc.filed_on else None,
            "deadline": (doc.issued_on + timedelta(days=30)).isoformat(),
            "accepted": True if filed else None,
            "issues": [],
        }
    reviewed = doc.reviewed_on is not None
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "doc_type": doc.doc_type,
        "drafting_unit": doc.drafting_unit,
        "issued_on": None if doc.issued_on is None else doc.issued_on.isoformat(),
        "legality_reviewed": reviewed,
        "legality_reviewed_on": doc.reviewed_on.isoformat() if reviewed else None,
        "fair_competition_reviewed": True
        if reviewed and doc.doc_type in ("normative_document", "major_decision")
        else None,
        "filing": filing,
        "status": status,
        "status_changed_on": None if changed_on is None else changed_on.isoformat(),
        "last_modified_ms": modified_ms,
    }


def _doc_plan() -> list[_Doc]:
    rng = random.Random("rulewatch-demo-documents")
    docs: list[_Doc] = []

    def contracts(year: int, first_seq: int, count: int, end: date) -> None:
        days = _workdays_in(date(year, 1, 3), end)
        for n, reviewed in enumerate(sorted(rng.choice(days) for _ in range(count))):
            issued = add_workdays(reviewed, rng.choice((0, 0, 1, 2, 3)))
            if issued > end:
                issued = reviewed
            title = f"《{year}年度{rng.choice(_CONTRACT_TOPICS)}合同》"
            if year == 2023 and n == 0:
                title = "《台州市人民政府 浙江大学进一步加快推进浙江大学台州研究院建设协议书》"
            docs.append(
                _Doc(
                    f"DOC-{year}-{first_seq + n:03d}",
                    title,
                    "government_contract",
                    issued,
                    reviewed,
                    drafting_unit=rng.choice(_DRAFTING_UNITS),
                )
            )

    # 2019: issued before the system went live, repealed in the 2023 clean-up.
    docs.append(
        _Doc(
            REPEALED_DOC_ID,
            "《台州市科技企业孵化器认定和管理办法》",
            "normative_document",
            _d("2019-05-10"),
            _d("2019-04-28"),
            _d("2019-05-24"),
            "repealed",
            _d("2023-11-24"),
            imported=True,
        )
    )
    # 2022
    docs.append(
        _Doc(
            "DOC-2022-001",
            "《台州市科技型中小企业培育实施办法》",
            "normative_document",
            _d("2022-04-12"),
            _d("2022-04-06"),
            _d("2022-04-26"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2022-002",
            "《台州市科技特派员管理办法》",
            "normative_document",
            _d("2022-08-30"),
            _d("2022-08-24"),
            _d("2022-09-16"),
        )
    )
    contracts(2022, 3, 25, date(2022, 12, 23))
    docs.append(
        _Doc(
            "DOC-2022-028",
            "《2022年度市级科技专项资金分配方案》",
            "major_decision",
            _d("2022-03-08"),
            _d("2022-03-01"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2022-029",
            "《台州市科学技术局2022年普法工作要点》",
            "other",
            _d("2022-02-21"),
            None,
        )
    )
    docs.append(
        _Doc(
            "DOC-2022-030",
            "《关于开展2022年科技活动周活动的通知》",
            "other",
            _d("2022-05-09"),
            None,
        )
    )
    # 2023: the seed's three municipal documents, forty contracts, two major decisions.
    docs.append(
        _Doc(
            "DOC-2023-001",
            "《台州市落实“315”科技创新体系建设工程实施方案（2023—2027年）》",
            "normative_document",
            _d("2023-03-28"),
            _d("2023-03-20"),
            _d("2023-04-10"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2023-002",
            "《台州市人民政府关于坚持创新制胜高水平建设创新型城市若干政策意见实施细则（试行）》",
            "normative_document",
            _d("2023-06-12"),
            _d("2023-06-05"),
            _d("2023-06-26"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2023-003",
            "《台州市碳达峰碳中和科技创新行动方案》",
            "normative_document",
            _d("2023-09-15"),
            _d("2023-09-08"),
            _d("2023-09-28"),
        )
    )
    contracts(2023, 4, 40, date(2023, 12, 22))
    docs.append(
        _Doc(
            "DOC-2023-044",
            "《关于修订台州市科技计划项目管理办法的决定》",
            "major_decision",
            _d("2023-05-23"),
            _d("2023-05-15"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2023-045",
            "《2023年度市级科技专项资金分配方案》",
            "major_decision",
            _d("2023-03-14"),
            _d("2023-03-07"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2023-046",
            "《台州市科学技术局合法性审查事项目录清单》",
            "other",
            _d("2023-02-20"),
            None,
        )
    )
    docs.append(
        _Doc(
            "DOC-2023-047",
            "《台州市科学技术局关于健全公平竞争审查工作机制的通知》",
            "other",
            _d("2023-04-11"),
            None,
        )
    )
    docs.append(
        _Doc(
            "DOC-2023-048",
            "《2023年度台州市科技局重大行政决策事项目录》",
            "other",
            _d("2023-02-27"),
            None,
        )
    )
    # 2024 up to DEMO_TODAY: one filed in time, one deadline missed, one due within days.
    docs.append(
        _Doc(
            FILED_2024_DOC_ID,
            "《台州市科技企业研发费用补助实施细则》",
            "normative_document",
            _d("2024-01-18"),
            _d("2024-01-12"),
            _d("2024-02-02"),
        )
    )
    docs.append(
        _Doc(
            MISSED_FILING_DOC_ID,
            "《台州市科技创新券管理办法》",
            "normative_document",
            _d("2024-03-05"),
            _d("2024-02-27"),
        )
    )
    docs.append(
        _Doc(
            DUE_SOON_DOC_ID,
            "《台州市新型研发机构认定管理办法》",
            "normative_document",
            _d("2024-04-23"),
            _d("2024-04-16"),
        )
    )
    docs.append(
        _Doc(
            DRAFT_DOC_ID,
            "《台州市技术转移机构绩效评价办法（征求意见稿）》",
            "normative_document",
            None,
            None,
            status="draft",
            status_changed_on=_d("2024-05-13"),
        )
    )
    docs.append(
        _Doc(
            DELETED_DOC_ID,
            "《关于开展2024年科技活动周活动的通知（草稿）》",
            "other",
            None,
            None,
            status="draft",
            status_changed_on=_d("2024-04-08"),
            deleted_on=_d("2024-05-10"),
        )
    )
    docs.append(
        _Doc(
            "DOC-2024-006",
            "《2024年度市级科技专项资金分配方案》",
            "major_decision",
            _d("2024-04-10"),
            _d("2024-04-02"),
        )
    )
    contracts(2024, 7, 12, date(2024, 5, 17))
    return docs


def _documents() -> list[Version]:
    rng = random.Random("rulewatch-demo-document-times")

    def stamp(day: date) -> int:
        return _at(day, rng.randrange(9 * 3600, 18 * 3600)) * 1000 + rng.randrange(1000)

    versions: list[Version] = []
    for doc in _doc_plan():
        if doc.deleted_on is not None:
            t1 = stamp(doc.status_changed_on or doc.deleted_on)
            v1 = _doc_record(
                doc,
                filed=False,
                status=doc.status,
                changed_on=doc.status_changed_on,
                modified_ms=t1,
            )
            t2 = stamp(doc.deleted_on)
            tomb = {"doc_id": doc.doc_id, "deleted": True, "last_modified_ms": t2}
            versions += [Version(t1, doc.doc_id, v1), Version(t2, doc.doc_id, tomb, True)]
            continue
        if doc.imported:
            t1 = stamp(date(2022, 1, 5))
            v1 = _doc_record(
                doc, filed=True, status="in_force", changed_on=doc.issued_on, modified_ms=t1
            )
            t2 = stamp(doc.status_changed_on or date(2022, 1, 5))
            v2 = _doc_record(
                doc, filed=True, status=doc.status, changed_on=doc.status_changed_on, modified_ms=t2
            )
            versions += [Version(t1, doc.doc_id, v1), Version(t2, doc.doc_id, v2)]
            continue
        if doc.issued_on is None:
            t1 = stamp(doc.status_changed_on or DEMO_TODAY)
            v1 = _doc_record(
                doc,
                filed=False,
                status=doc.status,
                changed_on=doc.status_changed_on,
                modified_ms=t1,
            )
            versions.append(Version(t1, doc.doc_id, v1))
            continue
        t1 = stamp(doc.issued_on)
        v1 = _doc_record(
            doc, filed=False, status="in_force", changed_on=doc.issued_on, modified_ms=t1
        )
        versions.append(Version(t1, doc.doc_id, v1))
        if doc.filed_on is not None:
            t2 = stamp(doc.filed_on)
            v2 = _doc_record(
                doc, filed=True, status="in_force", changed_on=doc.issued_on, modified_ms=t2
            )
            versions.append(Version(t2, doc.doc_id, v2))
    return versions


@lru_cache(maxsize=1)
def base_versions() -> dict[str, tuple[Version, ...]]:
    """Every version of every seed record, per stream, oldest first (built once)."""
    permits = _permits_year(2022, 547, 5) + _permits_year(2023, 606, 13) + _permits_2024()
    streams = {
        "permits.applications": permits,
        "enforcement.inspections": _inspections(),
        "docreview.documents": _documents(),
    }
    floor_ms = to_ms(datetime(2022, 1, 1, tzinfo=SHANGHAI))
    for versions in streams.values():
        versions.sort(key=lambda v: (v.instant_ms, v.key))
        assert versions[0].instant_ms >= floor_ms > SYNTHETIC_END_S * 1000
        assert versions[-1].instant_ms <= to_ms(DATA_HORIZON)
    return {name: tuple(versions) for name, versions in streams.items()}


def current_records(stream: str) -> list[dict[str, Any]]:
    """The newest version of each seed record of a stream (no synthetic, no malformed)."""
    newest: dict[str, dict[str, Any]] = {}
    for version in base_versions()[stream]:
        newest[version.key] = version.record
    return list(newest.values())


# --- malformed records ---------------------------------------------------------------------


def malformed_records(k: int) -> list[MalformedRecord]:
    """``k`` contract-breaking records per stream, dated 2023 so tests can see them excluded.

    The kinds rotate, most telling first: a missing natural key, a code outside its set
    (wrong case), an impossible date, a time in the wrong format, an empty key, another code.
    The roster gets ``k`` bad entries too (wrong-case role first).
    """
    out: list[MalformedRecord] = []
    good_permit = current_records("permits.applications")[600]
    good_inspection = next(
        r
        for r in current_records("enforcement.inspections")
        if r["inspection_no"] == "JC-2023-0001"
    )
    good_doc = next(
        r for r in current_records("docreview.documents") if r["doc_id"] == "DOC-2023-001"
    )
    for j in range(k):
        instant_s = _at(date(2023, 6, 1), 8 * 3600 + 600 * j)
        kind = j % 6
        key = f"WP2023-{900001 + j:06d}"
        rec = {**good_permit, "application_id": key, "updated_at": iso_local(instant_s)}
        rec["received_at"], rec["decided_at"] = "2023-05-30T10:00:00+08:00", iso_local(instant_s)
        out.append(
            _breach(
                "permits",
                "permits.applications",
                "application_id",
                "updated_at",
                rec,
                kind,
                ("status", "Approved"),
                ("category", "D"),
                instant_s,
                date_field="received_at",
                date_value="2023-02-30T10:00:00+08:00",
                time_value="2023-06-01 10:00:00",
            )
        )
        key = f"JC-2023-{9001 + j:04d}"
        rec = {
            **good_inspection,
            "inspection_no": key,
            "modified": local_stamp(instant_s),
            "inspected_on": "2023-05-30",
            "published_on": "2023-06-01",
        }
        out.append(
            _breach(
                "enforcement",
                "enforcement.inspections",
                "inspection_no",
                "modified",
                rec,
                kind,
                ("task_type", "Double_Random"),
                ("outcome", "closed"),
                instant_s,
                date_field="inspected_on",
                date_value="2023-02-30",
                time_value="2023-06-01T10:00:00+08:00",
            )
        )
        key = f"DOC-2023-{901 + j:03d}"
        rec = {
            **good_doc,
            "doc_id": key,
            "last_modified_ms": instant_s * 1000,
            "issued_on": "2023-05-30",
            "legality_reviewed_on": "2023-05-25",
        }
        out.append(
            _breach(
                "docreview",
                "docreview.documents",
                "doc_id",
                "last_modified_ms",
                rec,
                kind,
                ("doc_type", "Normative_Document"),
                ("status", "active"),
                instant_s,
                date_field="issued_on",
                date_value="2023-02-30",
                time_value="2023-06-01 10:00:00",
            )
        )
        out.append(_bad_officer(j))
    return out


def _breach(
    system: str,
    stream: str,
    key_field: str,
    time_field: str,
    record: dict[str, Any],
    kind: int,
    bad_code: tuple[str, str],
    other_code: tuple[str, str],
    instant_s: int,
    *,
    date_field: str,
    date_value: str,
    time_value: str,
) -> MalformedRecord:
    key: str | None = record[key_field]
    if kind == 0:
        del record[key_field]
        key, name, reason = None, "missing_key", f"{key_field}: missing natural key"
    elif kind == 1:
        record[bad_code[0]] = bad_code[1]
        name, reason = "bad_code", f"{bad_code[0]}: {bad_code[1]!r} is not a listed code"
    elif kind == 2:
        record[date_field] = date_value
        name, reason = "bad_date", f"{date_field}: {date_value!r} is not a valid date"
    elif kind == 3:
        record[time_field] = time_value
        name, reason = "bad_time", f"{time_field}: {time_value!r} is not in the stated format"
    elif kind == 4:
        record[key_field] = ""
        key, name, reason = "", "empty_key", f"{key_field}: empty natural key"
    else:
        record[other_code[0]] = other_code[1]
        name, reason = "bad_code", f"{other_code[0]}: {other_code[1]!r} is not a listed code"
    return MalformedRecord(system, stream, key, name, reason, record, instant_s * 1000)


def _bad_officer(j: int) -> MalformedRecord:
    officer_id: str | None = f"ZF-{901 + j:03d}"
    record: dict[str, Any] = {
        "officer_id": officer_id,
        "name": "赵立新",
        "role": "officer",
        "certified": True,
        "certificate_expires": "2028-12-31",
    }
    kind = j % 4
    if kind == 0:
        record["role"] = "Officer"
        name, reason = "bad_role", "role: 'Officer' is not a listed code"
    elif kind == 1:
        del record["officer_id"]
        officer_id, name, reason = None, "missing_key", "officer_id: missing natural key"
    elif kind == 2:
        record["certificate_expires"] = "2028-02-30"
        name, reason = "bad_date", "certificate_expires: '2028-02-30' is not a valid date"
    else:
        record["role"] = "volunteer"
        name, reason = "bad_role", "role: 'volunteer' is not a listed code"
    return MalformedRecord("enforcement", "enforcement.officers", officer_id, name, reason, record)


# --- synthetic records (scale) -------------------------------------------------------------

SYNTHETIC_START_S = _at(date(2015, 1, 12), 0)
SYNTHETIC_END_S = _at(date(2021, 12, 24), 0)
_SPAN_S = SYNTHETIC_END_S - SYNTHETIC_START_S
_M64 = (1 << 64) - 1


def _mix(i: int) -> int:
    """splitmix64: well-spread 64 bits from an index, so record i is a pure function of i."""
    z = (i + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def split_scale(scale: int) -> dict[str, int]:
    """How many synthetic records each stream gets: about 50% / 30% / 20%."""
    permits = scale // 2
    inspections = scale * 3 // 10
    return {
        "permits.applications": permits,
        "enforcement.inspections": inspections,
        "docreview.documents": scale - permits - inspections,
    }


class Synthetic:
    """``count`` synthetic records of one stream, made on demand from their index.

    Change times are whole seconds, strictly increasing with the index and spread over
    2015-01-12 .. 2021-12-24 local, all before any seed record; each record's events fall
    a few days before its change time, so its dates stay in 2015-2021.
    """

    key_field: str = ""

    def __init__(self, count: int) -> None:
        if count > _SPAN_S:
            raise ValueError(f"at most {_SPAN_S} synthetic records per stream")
        self.count = count

    def instant_s(self, i: int) -> int:
        return SYNTHETIC_START_S + i * _SPAN_S // self.count

    def instant_ms(self, i: int) -> int:
        return self.instant_s(i) * 1000

    def key(self, i: int) -> str:
        raise NotImplementedError

    def payload(self, i: int) -> bytes:
        raise NotImplementedError

    def index_of(self, key: str) -> int | None:
        """The index whose key this is, or None."""
        _, _, suffix = key.rpartition("-")
        if not suffix.isdigit():
            return None
        i = int(suffix) - self._key_offset
        if 0 <= i < self.count and self.key(i) == key:
            return i
        return None

    _key_offset = 0


def _j(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


_EMPLOYERS_JSON = tuple((_j(name), code) for name, code in EMPLOYERS)


class SyntheticPermits(Synthetic):
    """Applications from 2015-2021, decided (approved, some denied) within days."""

    key_field = "application_id"

    def _received(self, i: int, h: int) -> int:
        return self.instant_s(i) - 300 - h % 3600 - (h >> 12) % (4 * 86400) - 3600

    def key(self, i: int) -> str:
        h = _mix(i)
        return f"WP{local_date_of(self._received(i, h)).year}-{i:06d}"

    def payload(self, i: int) -> bytes:
        h = _mix(i)
        changed = self.instant_s(i)
        decided = changed - 300 - h % 3600
        received = changed - 300 - h % 3600 - (h >> 12) % (4 * 86400) - 3600
        style = (h >> 34) % 3
        kind = (h >> 30) % 200
        return (
            f'{{"application_id":"WP{local_date_of(received).year}-{i:06d}",'
            f'"received_at":"{iso_utc(received) if style == 0 else iso_local(received)}",'
            f'"decided_at":"{iso_utc(decided) if style == 1 else iso_local(decided)}",'
            f'"status":"{"denied" if (h >> 38) % 40 == 0 else "approved"}",'
            f"{_PERMIT_KINDS[kind]},{_EMPLOYER_FIELDS[(h >> 24) % _N_EMPLOYERS]},"
            f'"applicant":{{"name":"{_APPLICANT_NAMES[(h >> 49) % _N_APPLICANT_NAMES]}",'
            f'"passport_no":"{"EGKPXMN"[i % 7]}{(h >> 8) % 100000000:08d}",'
            f'"nationality":"{_NATIONALITIES[(h >> 17) % _N_NATIONALITIES]}"}},'
            f'"joint_residence_permit":{"false" if (h >> 61) == 0 else "true"},'
            f'"promised_days":{_PROMISED[kind]},'
            f'"updated_at":"{iso_utc(changed) if style == 2 else iso_local(changed)}"}}'
        ).encode()


# Pre-joined JSON fragments for the synthetic permits (index -> text).
_PERMIT_KINDS = tuple(
    f'"permit_type":"{_PERMIT_TYPES[n % 20]}","category":"{_CATEGORIES[n // 20]}"'
    for n in range(200)
)
_PROMISED = tuple(5 if _CATEGORIES[n // 20] == "A" else 10 for n in range(200))
_EMPLOYER_FIELDS = tuple(
    f'"employer_credit_code":"{code}","employer_name":{name}' for name, code in _EMPLOYERS_JSON
)
_N_EMPLOYERS = len(_EMPLOYER_FIELDS)
_APPLICANT_NAMES = tuple(f"{first} {last}" for first in _FIRST_NAMES for last in _LAST_NAMES)
_N_APPLICANT_NAMES = len(_APPLICANT_NAMES)
_N_NATIONALITIES = len(_NATIONALITIES)


_TASK_TYPES = ("double_random",) * 10 + ("special",) * 4 + ("complaint",) * 3 + ("routine",) * 3
_OUTCOMES = ("compliant",) * 14 + ("rectification_ordered",) * 4 + ("penalized", "referred")


class SyntheticInspections(Synthetic):
    """Inspections from 2015-2021, each by 2-3 certified officers, published within days."""

    key_field = "inspection_no"

    def _inspected(self, i: int, h: int) -> date:
        return local_date_of(self.instant_s(i)) - timedelta(days=1 + h % 6)

    def key(self, i: int) -> str:
        return f"JC-{self._inspected(i, _mix(i)).year}-{i:06d}"

    def payload(self, i: int) -> bytes:
        h = _mix(i)
        changed = self.instant_s(i)
        inspected = self._inspected(i, h)
        task = _TASK_TYPES[(h >> 4) % 20]
        double_random = task == "double_random"
        name, code = _EMPLOYERS_JSON[(h >> 10) % len(_EMPLOYERS_JSON)]
        first = (h >> 16) % 13
        step = 1 + (h >> 20) % 12
        ids = [OFFICER_IDS[(first + n * step) % 13] for n in range(2 + (h >> 24) % 2)]
        officers = ",".join(f'{{"officer_id":"{o}","certified":true}}' for o in ids)
        risk = f'"{"ABCD"[(h >> 26) % 4]}"' if double_random else "null"
        return (
            f'{{"inspection_no":"JC-{inspected.year}-{i:06d}","task_type":"{task}",'
            f'"joint":{"true" if double_random and (h >> 28) % 2 else "false"},'
            f'"target_credit_code":"{code}","target_name":{name},"credit_risk_level":{risk},'
            f'"credit_rule_applied":{"true" if double_random else "false"},'
            f'"inspected_on":"{inspected.isoformat()}","officers":[{officers}],'
            f'"outcome":"{_OUTCOMES[(h >> 30) % 20]}","published":true,'
            f'"published_on":"{local_date_of(changed).isoformat()}",'
            f'"modified":"{local_stamp(changed)}"}}'
        ).encode()


_DOC_KINDS = (
    ("government_contract",) * 12
    + ("normative_document",) * 3
    + (
        "major_decision",
        "other",
        "other",
        "other",
        "other",
    )
)
_DRAFTING_UNITS_JSON = tuple(_j(u) for u in _DRAFTING_UNITS)
_CONTRACT_TOPICS_JSON = tuple(_CONTRACT_TOPICS)


class SyntheticDocuments(Synthetic):
    """Documents from 2015-2021: contracts reviewed before signing, normative ones filed."""

    key_field = "doc_id"
    _key_offset = 1000  # suffixes of 4+ digits never meet the seed's 3-digit ones

    def _issued(self, i: int, h: int) -> date:
        day = local_date_of(self.instant_s(i))
        kind = _DOC_KINDS[h % 20]
        if kind == "normative_document":
            return day - timedelta(days=3 + (h >> 5) % 20)
        return day - timedelta(days=(h >> 5) % 3)

    def instant_ms(self, i: int) -> int:
        return self.instant_s(i) * 1000 + (_mix(i) >> 50) % 1000

    def key(self, i: int) -> str:
        return f"DOC-{self._issued(i, _mix(i)).year}-{i + 1000}"

    def payload(self, i: int) -> bytes:
        h = _mix(i)
        changed_ms = self.instant_ms(i)
        kind = _DOC_KINDS[h % 20]
        issued = self._issued(i, h)
        reviewed = issued - timedelta(days=(h >> 10) % 4)
        filing = "null"
        fair = "null"
        title = f"《{issued.year}年度{_CONTRACT_TOPICS_JSON[(h >> 14) % 10]}合同》"
        if kind == "normative_document":
            deadline = issued + timedelta(days=30)
            filed = local_date_of(self.instant_s(i))
            filing = (
                f'{{"filed":true,"filed_on":"{filed.isoformat()}",'
                f'"deadline":"{deadline.isoformat()}","accepted":true,"issues":[]}}'
            )
            fair = "true"
            title = f"《台州市科技创新政策实施细则（{issued.year}年第{i % 97 + 1}号）》"
        elif kind == "major_decision":
            fair = "true"
            title = f"《{issued.year}年度科技专项资金安排决策（第{i % 89 + 1}号）》"
        elif kind == "other":
            title = f"《关于做好{issued.year}年科技工作第{i % 83 + 1}号通知》"
        review = (
            '"legality_reviewed":false,"legality_reviewed_on":null'
            if kind == "other"
            else f'"legality_reviewed":true,"legality_reviewed_on":"{reviewed.isoformat()}"'
        )
        return (
            f'{{"doc_id":"DOC-{issued.year}-{i + 1000}","title":"{title}",'
            f'"doc_type":"{kind}","drafting_unit":{_DRAFTING_UNITS_JSON[(h >> 20) % 5]},'
            f'"issued_on":"{issued.isoformat()}",{review},'
            f'"fair_competition_reviewed":{fair},"filing":{filing},"status":"in_force",'
            f'"status_changed_on":"{issued.isoformat()}","last_modified_ms":{changed_ms}}}'
        ).encode()


SYNTHETIC: dict[str, Callable[[int], Synthetic]] = {
    "permits.applications": SyntheticPermits,
    "enforcement.inspections": SyntheticInspections,
    "docreview.documents": SyntheticDocuments,
}
