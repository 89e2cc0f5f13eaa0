"""The data layer: read tables, validate the survival columns, fit and apply feature preprocessing.

Everything here returns numpy arrays or pandas frames (no torch). Every problem a user can fix is raised as a
one-line :class:`~survmom.errors.DataError` naming the file, the column and a sample of offending values with
their 1-based data row numbers (the header is not counted).

Modules, each importing only those listed before it:

* ``messages`` pieces of error and warning messages; ``cells`` what a cell means (missing-value spellings,
  numbers in text, true/false words, category labels);
* ``tables`` what the readers share; ``table_writers`` prediction files by suffix; ``formats`` the protocol of
  the typed Arrow readers and the one Arrow-type mapping; ``text_numbers`` numbers held as text in a delimited
  file (decimal comma, Excel's grouped thousands "1.234,5"); ``text_bytes`` a text file's bytes (opened,
  decompressed, not binary); ``text_encoding`` its encoding (``--encoding``, byte-order marks, the first bad
  byte); ``whitespace`` whitespace-separated text (R's write.table) rewritten as tab-separated;
  ``text_dialect`` delimiter, decimal mark and encoding detected from the first lines;
* ``text`` delimited text (CSV, TSV, .txt/.dat, compressed); ``columnar`` Parquet;
  ``arrow_ipc`` Arrow IPC/Feather; ``statistical`` Stata, SPSS, SAS; ``excel`` Excel workbooks (typed sources);
* ``read`` read by file suffix, fingerprint, feature columns and forced types;
* ``dates`` times from dates (``--origin-col``); ``outcomes`` time and event; ``designs`` entry times, case
  weights, strata and a subject's intervals;
  ``split`` the train/validation split (by row, or by subject);
* ``encoding`` fitted column specs and their arithmetic; ``diagnostics`` warnings about features;
  ``preprocess`` the :class:`Preprocessor` (fit, transform, plain-data state).
"""

from survmom.data.cells import NA_MARKERS, as_number
from survmom.data.designs import (
    apply_strata,
    check_intervals,
    describe_stratum,
    fit_strata,
    interval_warnings,
    parse_entry,
    parse_weight,
    subject_codes,
)
from survmom.data.diagnostics import NewValues
from survmom.data.encoding import CategoricalColumn, NumericColumn
from survmom.data.messages import sample_rows
from survmom.data.outcomes import parse_event, parse_time
from survmom.data.preprocess import Preprocessor
from survmom.data.read import (
    SUPPORTED,
    concat_frames,
    declared_types,
    fingerprint,
    forced_types,
    is_workbook,
    iter_table_batches,
    nominal_notice_line,
    nominal_numbers,
    pandas_index_columns,
    read_table,
    read_table_share,
    rejoin_split_names,
    select_feature_columns,
    table_columns,
    text_notice,
    value_labels,
)
from survmom.data.split import stratified_folds, stratified_split, subject_folds, subject_split

__all__ = [
    "NA_MARKERS",
    "SUPPORTED",
    "CategoricalColumn",
    "NewValues",
    "NumericColumn",
    "Preprocessor",
    "apply_strata",
    "as_number",
    "check_intervals",
    "concat_frames",
    "declared_types",
    "describe_stratum",
    "fingerprint",
    "fit_strata",
    "forced_types",
    "interval_warnings",
    "is_workbook",
    "iter_table_batches",
    "nominal_notice_line",
    "nominal_numbers",
    "pandas_index_columns",
    "parse_entry",
    "parse_event",
    "parse_time",
    "parse_weight",
    "read_table",
    "read_table_share",
    "rejoin_split_names",
    "sample_rows",
    "select_feature_columns",
    "stratified_folds",
    "stratified_split",
    "subject_codes",
    "subject_folds",
    "subject_split",
    "table_columns",
    "text_notice",
    "value_labels",
]
