"""The one message catalog: every word rulewatch shows a person, in en and zh.

Templates (:mod:`rulewatch.templates`) and code look a key up with :func:`t`;
a key missing in one language is a test failure, not a silent fallback.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "zh")

#: key -> (en, zh)
MESSAGES: dict[str, tuple[str, str]] = {
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
    "alert.provisional_line": (
        "provisional: counts working days of a year whose official holiday arrangement "
        "is not published yet (Monday to Friday stands in)",
        "暂定 (provisional): 涉及尚未公布放假安排年份的工作日, 暂按周一至周五计算",
    ),
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
    "provisional_note": (
        "Provisional: counts working days of a year whose official holiday arrangement "
        "is not published yet (Monday to Friday stands in); it is recomputed when the "
        "arrangement arrives.",
        "暂定:涉及尚未公布放假安排年份的工作日,暂按周一至周五计算;放假安排公布后将重新计算。",
    ),
}


def t(key: str, language: str, /, **values: Any) -> str:
    """The message ``key`` in ``language`` (zh, else en), formatted with ``values``."""
    en, zh = MESSAGES[key]
    text = zh if language == "zh" else en
    return text.format(**values) if values else text


def word_with_id(key: str, language: str) -> str:
    """A status or severity in the bureau's language with its id beside it (zh), so
    every Chinese message still names the value a script would match."""
    return key if language == "en" else f"{t(key, language)} ({key})"
