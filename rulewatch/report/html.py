"""The HTML report: one self-contained file (inline CSS, charts as embedded PNG).

No scripts and no outside resources, so it opens the same from a mail
attachment, a file share or an intranet page. Text is in the bureau's language
(``alerts.language``); metric ids are shown everywhere, so every row cites the
target it is about. Elements carry ``data-*`` attributes for tests and scrapers.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from html import escape

from rulewatch.metric_ids import METRICS, label
from rulewatch.metrics import MetricValue
from rulewatch.report.charts import Chart
from rulewatch.report.data import ReportData
from rulewatch.report.published import format_percent

_TEXT = {
    "title": ("Rule-of-law compliance report", "法治政府建设合规报告"),
    "as_of": ("as of", "截至"),
    "ytd": ("year to date", "年初至今"),
    "generated": ("generated", "生成于"),
    "glance": ("At a glance", "概览"),
    "met": ("met", "达标"),
    "slipped": ("slipped", "未达标"),
    "no_data": ("no data", "无数据"),
    "info": ("info", "信息"),
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
    "match": ("match", "一致"),
    "mismatch": ("mismatch", "不一致"),
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
    "provisional": ("provisional", "暂定"),
    "provisional_note": (
        "Provisional: counts working days of a year whose official holiday arrangement "
        "is not published yet (Monday to Friday stands in); it is recomputed when the "
        "arrangement arrives.",
        "暂定:涉及尚未公布放假安排年份的工作日,暂按周一至周五计算;放假安排公布后将重新计算。",
    ),
}


def _t(key: str, language: str) -> str:
    en, zh = _TEXT[key]
    return zh if language == "zh" else en


def _value(m: MetricValue) -> str:
    if m.value is None:
        return "—"
    kind = METRICS[m.metric][0]
    if kind == "count":
        return str(m.value)
    return format_percent(m.value, 2, sign=kind == "yoy")


def _pct(value: float | None) -> str:
    return "—" if value is None else format_percent(value, 2)


def _time(value: datetime | None) -> str:
    return "—" if value is None else value.isoformat(sep=" ", timespec="seconds")


def _status(status: str, language: str) -> str:
    return f'<span class="status {escape(status)}">{escape(_t(status, language))}</span>'


_CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",system-ui,sans-serif;
margin:2rem auto;max-width:1200px;padding:0 1rem;color:#212121;line-height:1.5}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #eee}
.sub{color:#616161}table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #e0e0e0;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#fafafa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.85em;color:#37474f}.status{font-weight:600;padding:.05rem .45rem;border-radius:.6rem;white-space:nowrap}
.status.met,.status.match{background:#e8f5e9;color:#1b5e20}
.status.slipped,.status.mismatch{background:#ffebee;color:#b71c1c}
.status.no_data{background:#f5f5f5;color:#616161}.status.info{color:#0d47a1}
.glance{display:flex;gap:1rem;flex-wrap:wrap}.tile{border-radius:.5rem;padding:.8rem 1.2rem;
min-width:8rem}.tile b{display:block;font-size:2rem}.tile.met{background:#e8f5e9}
.tile.slipped{background:#ffebee}.tile.no_data{background:#f5f5f5}.tile.mismatch{background:#fff3e0}
tr.slipped td,tr.mismatch td{background:#fff8f8}img{max-width:100%;display:block;margin:.8rem 0}
.draft p{background:#fcfcfc;border-left:4px solid #90a4ae;padding:.5rem .8rem}
.provisional{font-size:.8em;color:#e65100;font-weight:600}.provisional-note{color:#e65100}
"""


def _scorecard(data: ReportData) -> str:
    lang = data.language
    head = "".join(
        f"<th>{_t(k, lang)}</th>"
        for k in (
            "metric",
            "label",
            "value",
            "nd",
            "target",
            "severity",
            "status",
            "since",
            "offenders_n",
        )
    )
    rows = []
    for t in data.targets:
        mark = (
            f' <span class="provisional">{_t("provisional", lang)}</span>' if t.provisional else ""
        )
        rows.append(
            f'<tr class="{escape(t.status)}" data-metric="{escape(t.metric)}" '
            f'data-status="{escape(t.status)}"'
            + (' data-provisional="true"' if t.provisional else "")
            + f"><td><code>{escape(t.metric)}</code></td>"
            f"<td>{escape(label(t.metric, lang))}</td><td class=num>{_pct(t.value)}{mark}</td>"
            f"<td class=num>{t.numerator} / {t.denominator}</td>"
            f"<td class=num>{_pct(t.target)}</td><td>{escape(t.severity)}</td>"
            f"<td>{_status(t.status, lang)}</td><td>{t.slipped_since or ''}</td>"
            f"<td class=num>{t.offender_count or ''}</td></tr>"
        )
    note = (
        f'<p class="provisional-note">{_t("provisional_note", lang)}</p>'
        if any(t.provisional for t in data.targets)
        else ""
    )
    return f"<table id=scorecard><tr>{head}</tr>{''.join(rows)}</table>{note}"


def _counts(data: ReportData) -> str:
    lang = data.language
    head = "".join(f"<th>{_t(k, lang)}</th>" for k in ("metric", "label", "value", "nd"))
    rows = []
    for m in data.metrics:
        if METRICS[m.metric][0] == "rate":
            continue
        nd = "" if m.denominator is None else f"{m.numerator} / {m.denominator}"
        rows.append(
            f'<tr data-metric="{escape(m.metric)}"><td><code>{escape(m.metric)}</code></td>'
            f"<td>{escape(label(m.metric, lang))}</td><td class=num>{_value(m)}</td>"
            f"<td class=num>{nd}</td></tr>"
        )
    return f"<table id=counts><tr>{head}</tr>{''.join(rows)}</table>"


def _offenders(data: ReportData) -> str:
    lang = data.language
    listed = [t for t in data.targets if t.offenders]
    if not listed:
        return f"<p id=offenders>{_t('no_offenders', lang)}</p>"
    parts = ["<div id=offenders>"]
    for t in sorted(listed, key=lambda t: (t.status != "slipped", t.metric)):
        parts.append(
            f'<h3 data-metric="{escape(t.metric)}"><code>{escape(t.metric)}</code> '
            f"{escape(label(t.metric, lang))} — {_pct(t.value)} ({t.numerator} / "
            f"{t.denominator}) {_status(t.status, lang)}</h3>"
            f"<table><tr><th>{_t('key', lang)}</th><th>{_t('reason', lang)}</th></tr>"
        )
        parts += [
            f'<tr data-metric="{escape(t.metric)}" data-key="{escape(o.natural_key)}">'
            f"<td><code>{escape(o.natural_key)}</code></td><td>{escape(o.reason or '')}</td></tr>"
            for o in t.offenders
        ]
        parts.append("</table>")
    parts.append("</div>")
    return "".join(parts)


def _reconciliation(data: ReportData) -> str:
    lang = data.language
    if not data.reconciliation:
        return f"<p id=reconciliation>{_t('no_recon', lang)}</p>"
    head = "".join(
        f"<th>{_t(k, lang)}</th>"
        for k in ("metric", "label", "published", "warehouse", "status", "arithmetic")
    )
    rows = []
    for r in data.reconciliation:
        quote = f'<br><span class="sub">“{escape(r.quote)}”</span>' if r.quote else ""
        rows.append(
            f'<tr class="{escape(r.status)}" data-metric="{escape(r.metric)}" '
            f'data-status="{escape(r.status)}"><td><code>{escape(r.metric)}</code></td>'
            f"<td>{escape(label(r.metric, lang))}{quote}</td>"
            f"<td class=num>{escape(r.published)}</td><td class=num>{escape(r.warehouse)}</td>"
            f'<td><span class="status {escape(r.status)}">{escape(_t(r.status, lang))}</span></td>'
            f"<td>{escape(r.arithmetic)}</td></tr>"
        )
    titles = "; ".join(dict.fromkeys(r.title for r in data.reconciliation))
    return (
        f'<p class="sub">{escape(titles)}</p>'
        f"<table id=reconciliation><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _charts(charts: Sequence[Chart]) -> str:
    return "".join(
        f'<figure data-chart="{escape(c.key)}"><img alt="{escape(c.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(c.png).decode("ascii")}"></figure>'
        for c in charts
    )


def _warnings(data: ReportData) -> str:
    lang = data.language
    if not data.early_warnings:
        return ""
    items = "".join(
        f'<li data-key="{escape(w["doc_id"])}"><code>docreview.filing_rate</code> — '
        f"<code>{escape(w['doc_id'])}</code> {escape(w['title'] or '')}: "
        + escape(_t("warning_line", lang).format(deadline=w["deadline"], days=w["days_left"]))
        + "</li>"
        for w in data.early_warnings
    )
    return f"<h2>{_t('warnings', lang)}</h2><ul id=early-warnings>{items}</ul>"


def _freshness(data: ReportData) -> str:
    lang = data.language
    head = "".join(
        f"<th>{_t(k, lang)}</th>"
        for k in (
            "source",
            "status",
            "last_sync",
            "last_ok",
            "read",
            "loaded",
            "set_aside",
            "syncs",
            "watermark",
        )
    )
    rows = []
    for f in data.freshness:
        status = escape(f.last_status) if f.last_status else _t("never", lang)
        if f.error:
            status += f'<br><span class="sub">{escape(f.error)}</span>'
        if f.stale_after_hours is not None:
            stale = _t("stale", lang).format(hours=f"{f.stale_after_hours:g}")
            status += f'<br><strong class="stale">{escape(stale)}</strong>'
        marks = "<br>".join(f"{escape(s)}: {_time(w)}" for s, w in f.watermarks) or "—"
        rows.append(
            f'<tr data-source="{escape(f.source)}"><td>{escape(f.source)}</td><td>{status}</td>'
            f"<td>{_time(f.last_started_at)}</td><td>{_time(f.last_succeeded_at)}</td>"
            f"<td class=num>{f.records_read}</td><td class=num>{f.records_loaded}</td>"
            f"<td class=num>{f.records_set_aside}</td><td class=num>{f.syncs}</td><td>{marks}</td></tr>"
        )
    return f"<table id=freshness><tr>{head}</tr>{''.join(rows)}</table>"


def _quarantine(data: ReportData) -> str:
    lang = data.language
    now = "".join(
        f'<tr data-stream="{escape(s)}"><td>{escape(s)}</td><td class=num>{n}</td></tr>'
        for s, n in data.set_aside_now.items()
    )
    parts = [
        f"<table id=set-aside-now><tr><th>{_t('stream', lang)}</th>"
        f"<th>{_t('set_aside_now', lang)}</th></tr>{now}</table>"
    ]
    if data.quarantine:
        rows = "".join(
            f"<tr><td>{escape(q.stream)}</td><td><code>{escape(q.check_name)}</code></td>"
            f"<td class=num>{q.versions}</td></tr>"
            for q in data.quarantine
        )
        parts.append(
            f"<table id=quarantine><tr><th>{_t('stream', lang)}</th><th>{_t('check', lang)}</th>"
            f"<th>{_t('versions', lang)}</th></tr>{rows}</table>"
        )
    else:
        parts.append(f"<p id=quarantine>{_t('no_quarantine', lang)}</p>")
    return "".join(parts)


def _glance(data: ReportData) -> str:
    lang = data.language
    tiles = []
    for status in ("met", "slipped", "no_data"):
        n = sum(t.status == status for t in data.targets)
        tiles.append(
            f'<div class="tile {status}" data-count="{status}"><b>{n}</b>{_t(status, lang)}</div>'
        )
    mismatches = sum(r.is_mismatch for r in data.reconciliation)
    tiles.append(
        f'<div class="tile mismatch" data-count="mismatch"><b>{mismatches}</b>'
        f"{_t('recon', lang)}: {_t('mismatch', lang)}</div>"
    )
    return f'<div class="glance">{"".join(tiles)}</div>'


def render_html(
    data: ReportData, charts: Sequence[Chart], drafts: dict[str, list[str]], warehouse: str
) -> str:
    """The whole report page."""
    lang = data.language
    ytd = f" ({_t('ytd', lang)})" if data.is_year_to_date else ""
    title = f"{_t('title', lang)} {data.period.label}"
    draft = "".join(
        f'<div class="draft" lang="{code}" data-language="{code}">'
        + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        + "</div>"
        for code, paragraphs in drafts.items()
    )
    return f"""<!DOCTYPE html>
<html lang="{"zh-CN" if lang == "zh" else "en"}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — rulewatch</title><style>{_CSS}</style></head>
<body data-period="{escape(data.period.label)}" data-as-of="{data.as_of}">
<h1>{escape(title)}</h1>
<p class="sub">{_t("as_of", lang)} {data.as_of}{ytd} · {_t("generated", lang)} {_time(data.generated_at)} UTC · {escape(warehouse)}</p>
<h2>{_t("glance", lang)}</h2>{_glance(data)}
<h2>{_t("scorecard", lang)}</h2>{_scorecard(data)}
<h2>{_t("recon", lang)}</h2>{_reconciliation(data)}
<h2>{_t("offenders", lang)}</h2>{_offenders(data)}
{_warnings(data)}
<h2>{_t("charts", lang)}</h2>{_charts(charts)}
<h2>{_t("counts", lang)}</h2>{_counts(data)}
<h2>{_t("freshness", lang)}</h2>{_freshness(data)}
<h2>{_t("quarantine", lang)}</h2>{_quarantine(data)}
<h2>{_t("draft", lang)}</h2>{draft}
</body></html>
"""
