"""The source systems rulewatch reads, each declared as data in its own module."""

from rulewatch.extract import docreview, enforcement, permits
from rulewatch.extract.engine import SourceSpec

SOURCES: dict[str, SourceSpec] = {
    spec.name: spec for spec in (permits.SPEC, enforcement.SPEC, docreview.SPEC)
}
