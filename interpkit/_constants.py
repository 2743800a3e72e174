"""File names and schema versions shared by every artifact interpkit writes."""

SCHEMA_VERSION = 1
"""Version of every JSON artifact's layout; bumped when a reader would misread an older file."""

CFG_NAME = "cfg.json"
TABLE_VALUES_NAME = "values.safetensors"
TABLE_EXAMPLES_NAME = "examples.parquet"
TABLE_FEATURES_NAME = "features.parquet"
TABLE_TOKENS_NAME = "tokens.parquet"
REPORT_JSON_NAME = "report.json"
REPORT_MD_NAME = "report.md"
REPORT_HTML_NAME = "report.html"
MANIFEST_NAME = "manifest.json"
