"""The one message catalog: every word rulewatch shows a person, in en and zh.

Templates (:mod:`rulewatch.common.templates`) and code look a key up with :func:`t`;
a key missing in one language is a test failure, not a silent fallback.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

LANGUAGES = ("en", "zh")

#: key -> (en, zh)
MESSAGES: dict[str, tuple[str, str]] = {
    # the annual-report draft
    "draft.slip": (
        "{label} was {value} ({numerator} of {denominator}), short of the {target} "
        "target ({metric}): {keys}{more}.",
        "{label}({metric})为{value}({numerator}/{denominator}),未达到{target}的目标,"
        "涉及{keys}{more}。",
    ),
    "draft.slip_more": (" ({total} in all)", "等{total}件"),
    "list.separator": (", ", "、"),
    # statuses and severities
    "met": ("met", "达标"),
    "slipped": ("slipped", "未达标"),
    "no_data": ("no data", "无数据"),
    "info": ("info", "信息"),
    "match": ("match", "一致"),
    "mismatch": ("mismatch", "不一致"),
    "critical": ("critical", "严重"),
    "warning": ("warning", "警告"),
    "provisional": ("provisional", "暂定"),
    # alerts
    "alert.slipped": ("SLIPPED", "未达标"),
    "alert.recovered": ("recovered", "已恢复达标"),
    "alert.reminder": ("still slipped", "仍未达标"),
    "alert.early_warning": ("early warning", "预警"),
    "alert.provisional": ("provisional", "暂定, provisional"),
    "alert.period": ("period {period}, as of {as_of}", "期间 {period}，截至 {as_of}"),
    "alert.records": ("records", "相关记录"),
    "alert.more": ("and {n} more", "另有 {n} 条"),
    "alert.due": ("due {day}", "期限 {day}"),
    "alert.agency_tag": ("[{name}] ", "【{name}】"),
    "alert.agency_line": ("agency: {name} ({id})", "单位：{name}（{id}）"),
    "alert.provisional_line": (
        "provisional: counts working days of a year whose official holiday arrangement "
        "is not published yet (Monday to Friday stands in)",
        "暂定 (provisional): 涉及尚未公布放假安排年份的工作日, 暂按周一至周五计算",
    ),
    # the supervising office's nightly digest
    "digest.title": ("nightly digest {as_of}: {summary}", "每日汇总 {as_of}：{summary}"),
    "digest.summary_met": ("all {n} agencies met every target", "全部 {n} 个单位目标均达标"),
    "digest.summary": (
        "{slipped} of {n} agencies slipped, {failed} failed or did not run",
        "{n} 个单位中 {slipped} 个未达标，{failed} 个运行失败或未运行",
    ),
    "digest.heading": (
        "{office}: rulewatch nightly digest as of {as_of} ({n} agencies)",
        "{office}：rulewatch 每日汇总，截至 {as_of}（共 {n} 个单位）",
    ),
    "digest.quiet": (
        "All met: every agency met every target; no source failing or stale; no early warning.",
        "全部达标：各单位目标均达标；无数据源失败或过期；无预警。",
    ),
    "digest.runs": ("Runs failed or missing", "运行失败或未运行"),
    "digest.run_failed": ("run failed: {reason}", "运行失败：{reason}"),
    "digest.did_not_run": (
        "no check stored for {as_of}: did not run",
        "无 {as_of} 的检查记录：未运行",
    ),
    "digest.slipped": ("Targets slipped", "未达标目标"),
    "digest.slip_line": (
        "{value} ({numerator} / {denominator}), target {target}, {severity}, slipped since {since}",
        "{value}（{numerator} / {denominator}），目标 {target}，{severity}，自 {since} 起未达标",
    ),
    "digest.new": ("New since the last digest", "自上次汇总以来的变化"),
    "digest.warnings": ("Early warnings", "预警"),
    "digest.warning_count": ("{n} record(s)", "{n} 条"),
    "digest.sources": ("Sources failing or stale", "数据源失败或过期"),
    "digest.source_failing": (
        "{source} failing since {since} UTC: {reason}",
        "{source} 自 {since} UTC 起同步失败：{reason}",
    ),
    "digest.source_stale": (
        "{source} stale: last successful sync {at} UTC ({hours} h ago)",
        "{source} 数据过期：上次成功同步 {at} UTC（{hours} 小时前）",
    ),
    "digest.none": ("none", "无"),
    "digest.met_count": (
        "{met} of {n} agencies met every target checked.",
        "{n} 个单位中 {met} 个全部目标达标。",
    ),
    # source and job health alerts
    "health.sync_failed": ("sync failing", "同步失败"),
    "health.sync_failing": ("still failing", "仍同步失败"),
    "health.sync_recovered": ("sync recovered", "同步已恢复"),
    "health.stale": ("data stale", "数据过期"),
    "health.still_stale": ("data still stale", "数据仍过期"),
    "health.fresh_again": ("data fresh again", "数据已更新"),
    "health.source": ("source {name}", "数据源 {name}"),
    "health.failed_at": (
        "{name}: the sync of {at} failed: {reason}",
        "{name}：{at} 的同步失败：{reason}",
    ),
    "health.failing_since": ("failing since {since}", "自 {since} 起失败"),
    "health.last_ok": ("last successful sync: {at}", "上次成功同步：{at}"),
    "health.never": ("never", "从未"),
    "health.recovered_at": ("{name}: synced successfully at {at}", "{name}：{at} 同步成功"),
    "health.stale_line": (
        "{name}: last successful sync {at}, {hours:.0f} h ago (allowed: {limit:g} h); is the nightly job still running?",
        "{name}：上次成功同步为 {at}，已过 {hours:.0f} 小时（允许 {limit:g} 小时）；夜间任务是否仍在运行？",
    ),
    "health.job": ("nightly job", "夜间任务"),
    "health.job_failed": ("failed", "失败"),
    "health.job_failing": ("still failing", "仍失败"),
    "health.job_recovered": ("recovered", "已恢复"),
    "health.job_line": (
        "flow run {run} ended {state}: {message}",
        "流程运行 {run} 以 {state} 结束：{message}",
    ),
    "health.job_ok_line": (
        "a nightly run got through to its alerts at {at}",
        "夜间运行已于 {at} 完成到告警步骤",
    ),
    "health.not_recorded": (
        "the warehouse could not record this alert ({error}); it is sent directly, once per failed run",
        "数据仓库无法记录此告警（{error}）；每次失败的运行直接发送一次",
    ),
    # charts
    "chart.targets": ("Targets at a glance", "目标完成情况"),
    "chart.percent_axis": ("% (black tick: target)", "%(黑线:目标值)"),
    "chart.history": ("Targets over the nightly history, {period}", "{period} 各目标每日走势"),
    "chart.no_history": ("no history yet", "暂无历史"),
    "chart.targets_monthly": ("Targets per month", "各目标按月情况"),
    "chart.counts_monthly": ("Counts per month", "按月业务量"),
    "chart.city_trends": ("Targets per month, by agency", "各单位目标按月走势"),
    # report
    "title": ("Rule-of-law compliance report", "法治政府建设合规报告"),
    "as_of": ("as of", "截至"),
    "ytd": ("year to date", "年初至今"),
    "generated": ("generated", "生成于"),
    "glance": ("At a glance", "概览"),
    "scorecard": ("Scorecard: targets", "目标完成情况"),
    "counts": ("Figures", "业务数据"),
    "metric": ("metric", "指标"),
    "label": ("label", "名称"),
    "value": ("value", "数值"),
    "nd": ("n / d", "分子 / 分母"),
    "target": ("target", "目标"),
    "status": ("status", "状态"),
    "severity": ("severity", "级别"),
    "since": ("slipped since", "未达标起始"),
    "offenders_n": ("offending records", "问题记录"),
    "offenders": ("Offending records", "问题记录明细"),
    "no_offenders": ("No offending records: every target is met.", "无问题记录:全部目标达标。"),
    "key": ("record", "记录"),
    "reason": ("reason", "原因"),
    "recon": ("Published figures reconciled", "已公布数据核对"),
    "no_recon": ("No published figures for this period.", "本期无已公布数据。"),
    "published": ("published", "已公布"),
    "warehouse": ("warehouse", "数据仓库"),
    "arithmetic": ("arithmetic", "计算过程"),
    "charts": ("Charts", "图表"),
    "warnings": ("Early warnings", "预警"),
    "warning_line": (
        "not filed, deadline {deadline} ({days} days left)",
        "未报备,报备期限{deadline}(剩余{days}天)",
    ),
    "freshness": ("Data freshness per source", "数据源更新情况"),
    "source": ("source", "数据源"),
    "last_sync": ("last sync (UTC)", "最近同步(UTC)"),
    "last_ok": ("last success (UTC)", "最近成功(UTC)"),
    "read": ("read", "读取"),
    "loaded": ("loaded", "载入"),
    "set_aside": ("set aside", "隔离"),
    "syncs": ("syncs", "同步次数"),
    "watermark": ("newest change loaded (UTC)", "最新变更(UTC)"),
    "never": ("never synced", "从未同步"),
    "stale": (
        "stale: no successful sync for over {hours} h",
        "数据过期：超过 {hours} 小时未成功同步",
    ),
    "quarantine": ("Quarantine", "隔离记录"),
    "stream": ("stream", "数据流"),
    "check": ("check", "检查"),
    "versions": ("record versions", "记录版本数"),
    "set_aside_now": ("records set aside now", "当前被隔离记录"),
    "no_quarantine": ("No record has been set aside.", "无隔离记录。"),
    "draft": ("Annual-report draft", "年度报告草稿"),
    # the city report
    "city.title": ("Rule-of-law league table", "法治政府建设考核排名"),
    "city.city": ("the city", "全市"),
    "city.rollup": ("city (all agencies)", "全市合计"),
    "city.agencies": ("agencies", "单位数"),
    "city.agency": ("agency", "单位"),
    "city.rank": ("rank", "排名"),
    "city.league": ("League table per target", "各目标排名"),
    "city.slips": ("Slipped targets", "未达标目标"),
    "city.no_slips": ("Every agency meets every target.", "各单位全部目标达标。"),
    "city.not_checked": ("not checked", "未检查"),
    "city.trends": ("Trends", "走势"),
    "city.no_trends": ("No monthly figures stored for this period.", "本期无按月数据。"),
    "city.offenders": ("Offending records by agency", "各单位问题记录"),
    "city.freshness": ("Data freshness per agency", "各单位数据源更新情况"),
    "city.recon": ("Published figures reconciled, per agency", "各单位已公布数据核对"),
    "city.rollup_note": (
        "The city row sums every agency's numerators and denominators; it is not an "
        "average of their rates.",
        "全市合计按各单位分子、分母分别求和计算,不是各单位比率的平均数。",
    ),
    "provisional_note": (
        "Provisional: counts working days of a year whose official holiday arrangement "
        "is not published yet (Monday to Friday stands in); it is recomputed when the "
        "arrangement arrives.",
        "暂定:涉及尚未公布放假安排年份的工作日,暂按周一至周五计算;放假安排公布后将重新计算。",
    ),
}


#: A record-level reason as the metric declarations state it in the warehouse (English,
#: see ``rulewatch/metrics/compute.py``; what ``check_offender`` stores) -> its Chinese text.
#: ``{name}`` stands for a date or a number taken over unchanged.
REASONS: tuple[tuple[str, str], ...] = (
    ("no received date", "无受理日期"),
    ("no promised days", "无承诺办结时限"),
    ("working days unknown (date outside the calendar)", "工作日数未知(日期超出日历范围)"),
    (
        "decided in {days} working days, promised {promised}",
        "{days}个工作日办结,承诺{promised}个工作日",
    ),
    ("credit rule not applied", "未应用信用规则"),
    ("result not published by {day}", "截至{day}结果未公开"),
    ("result not published", "结果未公开"),
    ("published without a publication date", "已公开但无公开日期"),
    ("published in {days} working days, limit {limit}", "{days}个工作日内公开,时限{limit}个工作日"),
    ("officer count unknown", "执法人员数未知"),
    ("{n} officer(s), not all certified", "{n}名执法人员,并非全部持证"),
    ("{n} officer(s), at least 2 required", "{n}名执法人员,至少需要2名"),
    ("not every officer certified", "并非全部执法人员持证"),
    ("not filed; deadline {day} passed", "未报备;报备期限{day}已过"),
    ("filed without a filing date", "已报备但无报备日期"),
    ("no filing deadline", "无报备期限"),
    ("filed {filed}, after the deadline {deadline}", "{filed}报备,晚于报备期限{deadline}"),
    ("filing not accepted", "报备未被接受"),
    ("no legality review", "未经合法性审查"),
    ("legality review without a date", "合法性审查无日期"),
    ("no legality review by {day}", "截至{day}未经合法性审查"),
    (
        "legality reviewed {reviewed}, after issue {issued}",
        "{reviewed}进行合法性审查,晚于印发日期{issued}",
    ),
    # early warnings
    ("not filed; deadline {day} in {n} day(s)", "未报备;报备期限{day},剩余{n}天"),
    (
        "result not published; {n} of {limit} working days used",
        "结果未公开;已用{n}个工作日(时限{limit}个)",
    ),
)
PROVISIONAL_REASON = (
    " (provisional: a year with no published working-day arrangement)",
    "(暂定:该年度放假安排尚未公布)",
)


@cache
def _reason_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    compiled = []
    for en, zh in REASONS:
        parts = re.split(r"{(\w+)}", en)
        regex = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts)
        )
        compiled.append((re.compile(f"{regex}$"), zh))
    return tuple(compiled)


def reason_text(reason: str | None, language: str) -> str:
    """A stored record-level reason in ``language``: as stored in en; in zh translated
    by :data:`REASONS` (a reason the catalog does not know, a custom rate's own
    text, is shown as written)."""
    if not reason or language != "zh":
        return reason or ""
    text, note = reason, ""
    if text.endswith(PROVISIONAL_REASON[0]):
        text, note = text[: -len(PROVISIONAL_REASON[0])], PROVISIONAL_REASON[1]
    for pattern, zh in _reason_patterns():
        found = pattern.match(text)
        if found:
            return zh.format(**found.groupdict()) + note
    return reason


def t(key: str, language: str, /, **values: Any) -> str:
    """The message ``key`` in ``language`` (zh, else en), formatted with ``values``."""
    en, zh = MESSAGES[key]
    text = zh if language == "zh" else en
    return text.format(**values) if values else text


def word_with_id(key: str, language: str) -> str:
    """A status or severity in the bureau's language with its id beside it (zh), so
    every Chinese message still names the value a script would match."""
    return key if language == "en" else f"{t(key, language)} ({key})"
