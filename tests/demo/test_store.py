"""The stores behind the demo servers, checked against a plain model of the feed."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable

import pytest

from rulewatch.demo import data
from rulewatch.demo.store import DOCUMENTS, DemoWorld, StreamStore


def _docs_store(synthetic: int = 40, change_log: bool = False) -> StreamStore:
    return StreamStore(
        DOCUMENTS,
        data.base_versions()["docreview.documents"],
        synthetic=data.SyntheticDocuments(synthetic),
        change_log=change_log,
    )


def _order(record: dict) -> tuple[int, str]:
    return record["last_modified_ms"], record["doc_id"]


def _read_by_pages(store: StreamStore, size: int, since_ms: int | None = None) -> list[dict]:
    out, page = [], 1
    while True:
        total, items, more = store.page_number(since_ms, page, size)
        out += [json.loads(i) for i in items]
        if not more:
            assert len(out) == total
            return out
        page += 1


def _read_by_cursor(store: StreamStore, limit: int, since_ms: int | None = None) -> list[dict]:
    out: list[dict] = []
    after = None
    while True:
        items, after = store.page_after(after, since_ms, limit)
        out += [json.loads(i) for i in items]
        if after is None:
            return out


def _model_current(synthetic: int) -> dict[str, dict]:
    model = {d["doc_id"]: d for d in data.current_records("docreview.documents")}
    generator = data.SyntheticDocuments(synthetic)
    for i in range(synthetic):
        record = json.loads(generator.payload(i))
        model[record["doc_id"]] = record
    return model


def test_current_state_feed_matches_a_model_through_random_changes():
    store = _docs_store(40)
    model = _model_current(40)
    rng = random.Random(7)
    for step in range(60):
        key = rng.choice(sorted(k for k, v in model.items() if not v.get("deleted")))
        if step % 10 == 9:
            model[key] = store.delete(key)
        else:
            model[key] = store.mutate(key, title=f"《修订{step}》")
        if step % 15 == 0:
            expected = sorted(model.values(), key=_order)
            size = rng.randint(1, 13)
            assert _read_by_pages(store, size) == expected
            assert _read_by_cursor(store, size) == expected
            since = expected[len(expected) // 2]["last_modified_ms"]
            tail = [r for r in expected if r["last_modified_ms"] >= since]
            assert _read_by_pages(store, 5, since) == tail
            assert _read_by_cursor(store, 5, since) == tail
    assert store.live_count == len(model)


def test_change_log_serves_every_version_in_order():
    store = _docs_store(10, change_log=True)
    versions = [v.record for v in data.base_versions()["docreview.documents"]]
    generator = data.SyntheticDocuments(10)
    versions += [json.loads(generator.payload(i)) for i in range(10)]
    versions.append(store.mutate(data.DUE_SOON_DOC_ID, title="《改》"))
    versions.append(store.mutate(data.DUE_SOON_DOC_ID, title="《再改》"))
    feed = _read_by_pages(store, 7)
    assert feed == sorted(versions, key=_order)
    assert len(feed) > len({r["doc_id"] for r in feed})
    mine = [r for r in feed if r["doc_id"] == data.DUE_SOON_DOC_ID]
    assert [r["title"] for r in mine[-2:]] == ["《改》", "《再改》"]
    assert store.current(data.DUE_SOON_DOC_ID)["title"] == "《再改》"


def test_a_change_moves_the_record_to_the_end_and_the_next_slides_back():
    store = _docs_store(0)
    _, first_page, _ = store.page_number(None, 1, 3)
    _, second_page, _ = store.page_number(None, 2, 3)
    changed = json.loads(first_page[0])["doc_id"]
    store.mutate(changed, status="revised")
    _, first_again, _ = store.page_number(None, 1, 3)
    assert first_again[:2] == first_page[1:]
    assert first_again[2] == second_page[0]  # slid back onto a page already read
    total, last_page, more = store.page_number(None, store.live_count, 1)
    assert not more and json.loads(last_page[0])["doc_id"] == changed
    assert json.loads(last_page[0])["last_modified_ms"] > data.to_ms(data.DATA_HORIZON)


def test_the_cursor_is_a_position_in_the_order_not_an_offset():
    store = _docs_store(20)
    expected = sorted(_model_current(20).values(), key=_order)
    items, after = store.page_after(None, None, 10)
    read = [json.loads(i) for i in items]
    already_read = read[0]["doc_id"]
    not_yet = expected[30]["doc_id"]
    store.mutate(already_read, title="《变》")
    store.mutate(not_yet, title="《也变》")
    while after is not None:
        items, after = store.page_after(after, None, 10)
        read += [json.loads(i) for i in items]
    keys = [r["doc_id"] for r in read]
    assert set(keys) == {r["doc_id"] for r in expected}  # nothing lost
    assert keys[-2:] == [already_read, not_yet]  # the changes come last, newest versions
    assert read[-1]["title"] == "《也变》"


def test_the_change_time_filter_is_inclusive():
    store = _docs_store(5)
    feed = _read_by_pages(store, 50)
    boundary = feed[40]
    again = _read_by_pages(store, 50, boundary["last_modified_ms"])
    assert again[0] == boundary and again == feed[40:]
    assert _read_by_pages(store, 50, boundary["last_modified_ms"] + 1) == feed[41:]


def test_touch_reversions_a_fraction_without_changing_content():
    world = DemoWorld(scale=2_000, malformed=3)
    store = world.store("permits")
    before = {r.get("application_id"): r for r in store.all_current()}
    horizon = store.last_instant_ms
    touched = world.touch_fraction("permits", 0.01)
    assert touched == round(len(before) * 0.01)
    after = {r.get("application_id"): r for r in store.all_current()}
    assert after.keys() == before.keys()
    assert store.live_count == len(before)
    moved = [k for k in after if after[k]["updated_at"] != before[k]["updated_at"]]
    assert len(moved) == touched
    for key in moved:
        assert {**after[key], "updated_at": None} == {**before[key], "updated_at": None}
    malformed_keys = {m.key for m in world.malformed if m.stream == "permits.applications"}
    assert not malformed_keys & set(moved)
    tail, _ = store.page_after(None, horizon + 1, 10_000)  # everything changed since
    assert sorted(json.loads(r)["application_id"] for r in tail) == sorted(moved)


def test_mutations_refuse_unknown_deleted_and_rekeyed_records():
    store = _docs_store(3)
    with pytest.raises(KeyError):
        store.mutate("DOC-1999-001", title="x")
    with pytest.raises(KeyError):
        store.mutate(data.DELETED_DOC_ID, title="x")
    with pytest.raises(ValueError):
        store.mutate(data.DUE_SOON_DOC_ID, doc_id="DOC-OTHER")
    with pytest.raises(KeyError):
        store.add({"doc_id": data.DUE_SOON_DOC_ID})
    synthetic_key = data.SyntheticDocuments(3).key(1)
    assert store.mutate(synthetic_key, status="revised")["status"] == "revised"
    with pytest.raises(ValueError):
        store.touch(1.5)


def test_roster_changes():
    world = DemoWorld()
    world.remove_officer("ZF-003")
    world.add_officer("ZF-014", "孙海峰")
    ids = [o["officer_id"] for o in json.loads(world.roster.payload())["officers"]]
    assert "ZF-003" not in ids and "ZF-014" in ids and len(ids) == 19
    with pytest.raises(KeyError):
        world.remove_officer("ZF-003")


def _counting(method: Callable, name: str, made: Counter) -> Callable:
    def counted(self: data.Synthetic, i: int) -> object:
        made[name] += 1
        return method(self, i)

    return counted


def _count_synthetic_records_made(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many synthetic payloads and keys are made from here on (every stream)."""
    made: Counter = Counter()
    for cls in (data.SyntheticPermits, data.SyntheticInspections, data.SyntheticDocuments):
        for name in ("payload", "key"):
            monkeypatch.setattr(cls, name, _counting(getattr(cls, name), name, made))
    return made


def test_a_million_records_are_made_on_demand_and_page_anywhere(monkeypatch):
    """Nothing is made up front and a page makes only its own records, so a million
    cost no time (the times are in ``bench/bounds.py``)."""
    made = _count_synthetic_records_made(monkeypatch)
    world = DemoWorld(scale=1_000_000)
    assert made["payload"] == 0
    assert made["key"] < 10_000  # looked up for the seed records (~1,400), not one per record
    store = world.store("enforcement")
    assert store.live_count == 300_000 + len(data.current_records("enforcement.inspections"))
    made.clear()
    total, items, more = store.page_number(None, 1_400, 200)
    assert total == store.live_count and len(items) == 200 and more
    assert made["payload"] == 200  # the page's own records, not the 280,000 before them
    live = world.store("docreview").live_count
    made.clear()
    touched = world.touch_fraction("docreview", 0.01)
    assert touched == round(live * 0.01)
    assert made["payload"] == touched  # each touched record made once, the others not at all
