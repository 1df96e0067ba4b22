"""A draft of the annual report's statistics paragraphs, in Chinese and English.

Modelled on the seed report's sentences on work permits (section 一(四)),
enforcement (一(二), 一(四), 一(六)) and document review (一(三), 一(五)); every
figure comes from the warehouse, so a mis-computed published figure is stated
correctly here and listed in the notes for the editor.
"""

from __future__ import annotations

from rulewatch.common.messages import t
from rulewatch.common.metric_ids import label
from rulewatch.common.numbers import format_percent
from rulewatch.metrics.compute import MetricValue
from rulewatch.report.data import ReportData


def _once(paragraphs: list[str]) -> list[str]:
    """Each paragraph once, in order: the same slip or editor's note (a figure published
    in two reports, a target in two lists) is stated one time."""
    return list(dict.fromkeys(p for p in paragraphs if p))


def _span_zh(data: ReportData) -> str:
    p, a = data.period, data.as_of
    if not data.is_year_to_date and "-" not in p.label:
        return "全年"
    end = min(p.end, a)
    return f"{p.start.year}年{p.start.month}月{p.start.day}日至{end.month}月{end.day}日"


def _span_en(data: ReportData) -> str:
    p, a = data.period, data.as_of
    if not data.is_year_to_date and "-" not in p.label:
        return f"In {p.label}"
    end = min(p.end, a)
    return f"From {p.start:%-d %B %Y} to {end:%-d %B %Y}"


def _yoy_zh(m: MetricValue) -> str:
    if m.value is None:
        return ""
    verb = "增加" if m.value >= 0 else "减少"
    return f",同比{verb}{format_percent(abs(m.value))}"


def _yoy_en(m: MetricValue) -> str:
    if m.value is None:
        return ""
    verb = "up" if m.value >= 0 else "down"
    return f" ({verb} {format_percent(abs(m.value))} year on year)"


def _rate(data: ReportData, metric: str) -> str:
    m = data.metric(metric)
    return "—" if m.value is None else format_percent(m.value)


def _slips(data: ReportData, prefix: str, language: str) -> list[str]:
    """A sentence per slipped target of the domain ``prefix``, from the message catalog."""
    lines = []
    for s in data.slipped:
        if not s.metric.startswith(prefix):
            continue
        lines.append(
            t(
                "draft.slip",
                language,
                label=label(s.metric, language),
                metric=s.metric,
                value=format_percent(s.value or 0),
                numerator=s.numerator,
                denominator=s.denominator,
                target=format_percent(s.target),
                keys=t("list.separator", language).join(o.natural_key for o in s.offenders[:10]),
                more=t("draft.slip_more", language, total=s.offender_count)
                if s.offender_count > 10
                else "",
            )
        )
    return lines


def draft_zh(data: ReportData) -> list[str]:
    """The Chinese paragraphs: permits, enforcement, document review, notes."""
    m = data.metric
    span = _span_zh(data)
    permits = (
        f"{span}共受理外国人来华工作许可申请{m('permits.received').value}件"
        f"{_yoy_zh(m('permits.received_yoy'))}。其中,准予许可{m('permits.approved').value}件"
        f"{_yoy_zh(m('permits.approved_yoy'))},不予许可{m('permits.denied').value}件"
        f"{_yoy_zh(m('permits.denied_yoy'))}。按承诺时限办结率{_rate(data, 'permits.on_time_rate')}。"
    )
    enforcement = (
        f"{span}开展行政检查{m('enforcement.inspections').value}次,其中“双随机、一公开”"
        f"跨部门执法检查{m('enforcement.double_random').value}次,“双随机、一公开”监管应用信用"
        f"规则率{_rate(data, 'enforcement.credit_rule_rate')},检查结果公开率"
        f"{_rate(data, 'enforcement.publication_rate')},20个工作日内公开率"
        f"{_rate(data, 'enforcement.publication_timely_rate')},持证执法率"
        f"{_rate(data, 'enforcement.certified_officer_rate')}。"
        f"全面落实行政执法人员持证上岗制度,截至{data.as_of.year}年{data.as_of.month}月"
        f"{data.as_of.day}日共有行政执法人员{m('enforcement.certified_officers').value}人,"
        f"辅助执法人员{m('enforcement.auxiliary_staff').value}人。"
    )
    docreview = (
        f"{span}审查市级政府及所属部门行政规范性文件{m('docreview.normative_issued').value}份,"
        f"清理{m('docreview.repealed').value}份;规范性文件报备率"
        f"{_rate(data, 'docreview.filing_rate')}、及时率{_rate(data, 'docreview.filing_timely_rate')}、"
        f"合规率{_rate(data, 'docreview.filing_compliance_rate')},合法性审查率"
        f"{_rate(data, 'docreview.legality_review_rate')};为"
        f"{m('docreview.contracts_reviewed').value}件政府合同提供合法性审查。"
    )
    paragraphs = [
        permits + "".join(_once(_slips(data, "permits.", "zh"))),
        enforcement + "".join(_once(_slips(data, "enforcement.", "zh"))),
        docreview + "".join(_once(_slips(data, "docreview.", "zh"))),
    ]
    for r in data.reconciliation:
        if r.is_mismatch:
            paragraphs.append(
                f"【编辑注】已公布的{label(r.metric, 'zh')}{r.published}与数据仓库计算结果"
                f"{r.warehouse}不一致({r.arithmetic}),本稿采用{r.warehouse}。"
            )
    return _once(paragraphs)


def draft_en(data: ReportData) -> list[str]:
    """The English paragraphs: permits, enforcement, document review, notes."""
    m = data.metric
    span = _span_en(data)
    permits = (
        f"{span} the bureau received {m('permits.received').value} applications for "
        f"foreigners' work permits{_yoy_en(m('permits.received_yoy'))}; it approved "
        f"{m('permits.approved').value}{_yoy_en(m('permits.approved_yoy'))} and denied "
        f"{m('permits.denied').value}{_yoy_en(m('permits.denied_yoy'))}. "
        f"{_rate(data, 'permits.on_time_rate')} of decisions were made within the promised "
        "working days."
    )
    enforcement = (
        f"{span} it carried out {m('enforcement.inspections').value} inspections, "
        f'{m("enforcement.double_random").value} of them cross-department "double random, '
        f'one public" inspections; the credit-risk rule was applied in '
        f"{_rate(data, 'enforcement.credit_rule_rate')} of them, "
        f"{_rate(data, 'enforcement.publication_rate')} of the finished ones had their results "
        f"published ({_rate(data, 'enforcement.publication_timely_rate')} within 20 working "
        f"days), and {_rate(data, 'enforcement.certified_officer_rate')} of inspections were "
        f"carried out by at least two certified officers. On {data.as_of:%-d %B %Y} the bureau "
        f"had {m('enforcement.certified_officers').value} certified enforcement officers and "
        f"{m('enforcement.auxiliary_staff').value} auxiliary staff."
    )
    docreview = (
        f"{span} it reviewed {m('docreview.normative_issued').value} normative documents and "
        f"repealed {m('docreview.repealed').value} in the clean-up; the filing rate was "
        f"{_rate(data, 'docreview.filing_rate')}, timely filing "
        f"{_rate(data, 'docreview.filing_timely_rate')} and filings accepted "
        f"{_rate(data, 'docreview.filing_compliance_rate')}; "
        f"{_rate(data, 'docreview.legality_review_rate')} of documents passed legality review "
        f"before issue, and {m('docreview.contracts_reviewed').value} government contracts "
        "were reviewed for legality."
    )
    paragraphs = [
        " ".join([permits, *_once(_slips(data, "permits.", "en"))]),
        " ".join([enforcement, *_once(_slips(data, "enforcement.", "en"))]),
        " ".join([docreview, *_once(_slips(data, "docreview.", "en"))]),
    ]
    for r in data.reconciliation:
        if r.is_mismatch:
            paragraphs.append(
                f"[Editor's note] The published {r.metric} of {r.published} does not match the "
                f"warehouse's {r.warehouse} ({r.arithmetic}); this draft uses {r.warehouse}."
            )
    return _once(paragraphs)


def draft_markdown(data: ReportData, language: str) -> str:
    """The draft as a small Markdown file, ready to paste into the annual report."""
    whose = data.agency_name_in(language)
    if language == "zh":
        title = f"# {data.period.label}年度法治政府建设报告 统计段落(草稿,截至{data.as_of})"
        if whose is not None:
            title = f"# {whose}{title[2:]}"
        paragraphs = draft_zh(data)
    else:
        title = f"# Rule-of-law annual report {data.period.label}: statistics (draft, as of {data.as_of})"
        if whose is not None:
            title = f"# {whose}: {title[2:]}"
        paragraphs = draft_en(data)
    return "\n\n".join([title, *paragraphs]) + "\n"
