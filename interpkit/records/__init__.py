"""Interchange formats: activation records, feature dumps and intervention records.

Three frozen record types read from and written to streaming JSONL, field names fixed by the
formats researchers already produce. Unknown fields are kept in each record's ``extra`` and
written back, and every malformed input raises a `RecordError` naming file, line and field.

>>> from interpkit.records import InterventionRecord
>>> rec = InterventionRecord.from_dict({"model": "m", "feature_id": 3, "intervention": "ablate",
...                                     "baseline_score": 0.9, "intervention_score": 0.4})
>>> round(rec.signed_effect, 2)  # the score dropped when the feature was removed: it promotes
0.5
"""

from ._activation import ActivationRecord, FeatureActivation
from ._dump import FeatureDump
from ._errors import RecordError
from ._intervention import (
    DECREASING_INTERVENTIONS,
    INCREASING_INTERVENTIONS,
    INTERVENTION_KINDS,
    FilterResult,
    InterventionRecord,
    canonical_intervention,
    filter_interventions,
    normalize_criterion,
)
from ._jsonl import (
    RecordKind,
    Source,
    detect_record_kind,
    iter_activation_records,
    iter_feature_dumps,
    iter_intervention_records,
    iter_records,
    read_activation_records,
    read_feature_dumps,
    read_intervention_records,
    write_jsonl,
)

__all__ = [
    "DECREASING_INTERVENTIONS",
    "INCREASING_INTERVENTIONS",
    "INTERVENTION_KINDS",
    "ActivationRecord",
    "FeatureActivation",
    "FeatureDump",
    "FilterResult",
    "InterventionRecord",
    "RecordError",
    "RecordKind",
    "Source",
    "canonical_intervention",
    "detect_record_kind",
    "filter_interventions",
    "iter_activation_records",
    "iter_feature_dumps",
    "iter_intervention_records",
    "iter_records",
    "normalize_criterion",
    "read_activation_records",
    "read_feature_dumps",
    "read_intervention_records",
    "write_jsonl",
]
