"""Interchange formats: activation records, feature dumps, intervention records, specs and reports.

Three frozen record types read from and written to streaming JSONL, field names fixed by the
formats researchers already produce. Unknown fields are kept in each record's ``extra`` and
written back, and every malformed input raises a `RecordError` naming file, line and field.
An `InterventionSpec` (one JSON file: steering edits with their vectors and sha256) is what the
steering panel once saved (still read: `read_intervention_spec`); a `SteeringArtifact` (a folder:
``steering.json`` + ``vector.safetensors``, `read_steering_artifact` / `write_steering_artifact`) is
one steering vector with its held-out evidence and provenance, what ``export-steering`` and the panel write. `ReportRecord` is
``report.json`` as a format (`read_report`); the report layer's ``Report`` builds on it. `GraphRecord`
is an attribution graph as ``graph.json`` holds it (`read_graph_record` / `write_graph_record`), and
in the JSON circuit-tracer writes and Neuronpedia's viewer reads (`neuronpedia_graph`,
`read_neuronpedia_graph`; `read_graph_file` reads either).

>>> from interpkit.records import InterventionRecord
>>> rec = InterventionRecord.from_dict({"model": "m", "feature_id": 3, "intervention": "ablate",
...                                     "baseline_score": 0.9, "intervention_score": 0.4})
>>> round(rec.signed_effect, 2)  # the score dropped when the feature was removed: it promotes
0.5
"""

from ._activation import ActivationRecord, FeatureActivation
from ._dump import FeatureDump
from ._errors import RecordError
from ._graph import (
    GRAPH_FORMAT,
    GRAPH_JSON_NAME,
    GraphNodeRecord,
    GraphRecord,
    GraphTarget,
    read_graph_record,
    write_graph_record,
)
from ._graph_neuronpedia import (
    NEURONPEDIA_JSON_NAME,
    neuronpedia_graph,
    read_graph_file,
    read_neuronpedia_graph,
    write_neuronpedia_graph,
)
from ._intervention import (
    CONTROL_KINDS,
    DECREASING_INTERVENTIONS,
    INCREASING_INTERVENTIONS,
    INTERVENTION_KINDS,
    FilterResult,
    InterventionRecord,
    canonical_intervention,
    control_id,
    control_owner,
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
from ._report import REPORT_KIND, FeatureEntryRecord, InputFile, ReportRecord, ReportSchemaError, read_report
from ._spec import (
    INTERVENTION_SPEC_KIND,
    InterventionSpec,
    SpecEdit,
    read_intervention_spec,
    vector_sha256,
    write_intervention_spec,
)
from ._steering import (
    STEERING_ARTIFACT_KIND,
    STEERING_JSON_NAME,
    SteeringArtifact,
    read_steering_artifact,
    write_steering_artifact,
)

__all__ = [
    "CONTROL_KINDS",
    "DECREASING_INTERVENTIONS",
    "GRAPH_FORMAT",
    "GRAPH_JSON_NAME",
    "INCREASING_INTERVENTIONS",
    "INTERVENTION_KINDS",
    "INTERVENTION_SPEC_KIND",
    "NEURONPEDIA_JSON_NAME",
    "REPORT_KIND",
    "STEERING_ARTIFACT_KIND",
    "STEERING_JSON_NAME",
    "ActivationRecord",
    "FeatureActivation",
    "FeatureDump",
    "FeatureEntryRecord",
    "FilterResult",
    "GraphNodeRecord",
    "GraphRecord",
    "GraphTarget",
    "InputFile",
    "InterventionRecord",
    "InterventionSpec",
    "RecordError",
    "RecordKind",
    "ReportRecord",
    "ReportSchemaError",
    "Source",
    "SpecEdit",
    "SteeringArtifact",
    "canonical_intervention",
    "control_id",
    "control_owner",
    "detect_record_kind",
    "filter_interventions",
    "iter_activation_records",
    "iter_feature_dumps",
    "iter_intervention_records",
    "iter_records",
    "neuronpedia_graph",
    "normalize_criterion",
    "read_activation_records",
    "read_feature_dumps",
    "read_graph_file",
    "read_graph_record",
    "read_intervention_records",
    "read_intervention_spec",
    "read_neuronpedia_graph",
    "read_report",
    "read_steering_artifact",
    "vector_sha256",
    "write_intervention_spec",
    "write_graph_record",
    "write_jsonl",
    "write_neuronpedia_graph",
    "write_steering_artifact",
]
