"""Per-dialect guard data: which AST node types and which functions a read query may use.

This module owns the allowlists as DATA; ``mcp_server.guard`` owns the single walk that applies
them. Everything not listed here is rejected (fail closed), so adding a function is a deliberate,
reviewable one-line change. Function names are upper case and are either sqlglot's canonical name
for a known function class (``exp.Substring`` -> ``SUBSTRING``, see ``Func.sql_name()``) or the
name of an ``exp.Anonymous`` call as written (``JULIANDAY``).

What is deliberately absent: anything that touches files, the network, extensions, sessions,
locks, sequences, sleeping, dynamic SQL or server configuration (``load_extension``, ``readfile``,
``pg_read_file``, ``lo_import``, ``dblink``, ``set_config``, ``nextval``, ``query_to_xml``,
``read_csv``, ``glob`` (DuckDB), ``LOAD_FILE``, ``SLEEP``, ``BENCHMARK``, ``GET_LOCK`` ...).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOWED_FUNCTIONS",
    "ALLOWED_NODES",
    "ALLOWED_ROOTS",
    "BLOCKED_NODE_RULES",
    "DIALECTS",
    "EXECUTABLE_COMMENT_MARKERS",
    "FILE_PATH_TABLE_CHARS",
    "MAX_PAREN_DEPTH",
    "MAX_SQL_CHARS",
    "sqlglot_dialect",
]

DIALECTS: Final = ("sqlite", "postgres", "mysql", "duckdb")

_KIND_TO_DIALECT: Final[dict[str, str]] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "duckdb": "duckdb",
}


def sqlglot_dialect(kind: str) -> str:
    """Map an engine kind ("sqlite", "postgresql", "mysql", "duckdb") to its sqlglot dialect name.

    Raises ``ValueError`` for an unknown kind (never guesses a dialect).
    """
    try:
        return _KIND_TO_DIALECT[kind.lower()]
    except KeyError:
        raise ValueError(
            f"unknown engine kind {kind!r}; expected one of {sorted(_KIND_TO_DIALECT)}"
        ) from None


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- limits -----------------------------------------------------------------------------------

MAX_SQL_CHARS: Final = 100_000
# sqlglot's parser recurses per nesting level; the deepest Spider/BIRD gold nests 5 levels.
MAX_PAREN_DEPTH: Final = 64

# Comments the engine executes or obeys: MySQL/MariaDB conditional comments (/*! ... */, /*M! ... */)
# and optimizer hints (/*+ SET_VAR(max_execution_time=0) */ would lift the timeout). Rejected in
# every dialect: no legitimate read needs them.
EXECUTABLE_COMMENT_MARKERS: Final = ("/*!", "/*M!", "/*+")

# DuckDB resolves an unknown table name that looks like a path or URL through a replacement scan
# (FROM 'x.csv', FROM "s3://b/x.parquet"). Per dialect: characters that make a table name a path.
FILE_PATH_TABLE_CHARS: Final[dict[str, frozenset[str]]] = {
    "duckdb": frozenset("./\\:*?~"),
}

# --- node types -------------------------------------------------------------------------------

# Statement kinds allowed at the top level.
ALLOWED_ROOTS: Final = frozenset({"Select", "Union", "Intersect", "Except", "Subquery"})

# Every non-function node type a read query may contain (class names of sqlglot.expressions).
# Functions (subclasses of exp.Func) are checked by name against ALLOWED_FUNCTIONS instead.
ALLOWED_NODES: Final = _names(
    """
    Select Union Intersect Except With CTE Subquery From Join Where Group Having Qualify Order
    Ordered Limit Offset Fetch Distinct Window WindowSpec Alias Aliases TableAlias Table Column
    Identifier Star Values Tuple Lateral Cube Rollup GroupingSets IgnoreNulls RespectNulls
    WithinGroup Filter LimitOptions TableSample Semicolon
    Literal Null Boolean ByteString HexString BitString RawString National DataType DataTypeParam
    Var Interval IntervalSpan
    Paren Not Neg BitwiseNot Add Sub Mul Div IntDiv Mod DPipe EQ NEQ GT GTE LT LTE NullSafeEQ
    NullSafeNEQ Is Between In Like ILike Glob SimilarTo Escape Any All BitwiseAnd BitwiseOr
    BitwiseXor BitwiseLeftShift BitwiseRightShift Bracket Dot Slice Distance
    JSONPath JSONPathKey JSONPathRoot JSONPathSubscript JSONPathWildcard JSONPathSlice
    """
)

_WRITES: Final = _names(
    """
    Insert Update Delete Merge Create Drop Alter AlterColumn TruncateTable Returning Analyze Grant
    Revoke Comment Refresh Cache Uncache LoadData Use Describe Show Summarize Export Kill
    """
)

# Node types with a specific rule id and advice (checked before ALLOWED_NODES so the message is clear).
BLOCKED_NODE_RULES: Final[dict[str, tuple[str, str]]] = {
    **{
        name: ("read_only", "only read queries run here; writes and schema changes are not allowed")
        for name in _WRITES
    },
    "Transaction": ("transaction_control", "transaction control (BEGIN/COMMIT/ROLLBACK) is not allowed"),
    "Commit": ("transaction_control", "transaction control (BEGIN/COMMIT/ROLLBACK) is not allowed"),
    "Rollback": ("transaction_control", "transaction control (BEGIN/COMMIT/ROLLBACK) is not allowed"),
    "Pragma": ("pragma", "PRAGMA statements are not allowed; read schema with the schema tools"),
    "Attach": ("attach", "ATTACH/DETACH of other databases is not allowed"),
    "Detach": ("attach", "ATTACH/DETACH of other databases is not allowed"),
    "Copy": ("copy", "COPY reads or writes files and is not allowed"),
    "Set": ("set", "SET changes session settings and is not allowed"),
    "SetItem": ("set", "SET changes session settings and is not allowed"),
    "Install": ("extension", "installing or loading extensions is not allowed"),
    "Command": (
        "unparsed_command",
        "the statement is not a query sqlr1 understands (CALL, DO, EXECUTE, LOAD, VACUUM, ... are not allowed)",
    ),
    "Into": ("select_into", "SELECT ... INTO creates or writes a table/variable; select the rows directly"),
    "Lock": ("locking_clause", "FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE take locks; remove the clause"),
    "Hint": ("optimizer_hint", "optimizer hints are not allowed; remove the /*+ ... */ hint"),
    "Placeholder": ("parameter", "bind parameters are not supported; write the value as a literal"),
    "Parameter": ("parameter", "parameters and user/session variables are not allowed; use literals"),
    "SessionParameter": ("parameter", "session variables are not allowed"),
    "PropertyEQ": ("parameter", "assignments (:=) are not allowed"),
}

# --- functions --------------------------------------------------------------------------------


# sqlglot canonical names of known function classes that are side-effect free everywhere.
_COMMON: Final = _names(
    """
    AND OR XOR CASE CAST TRY_CAST IF COALESCE NULLIF NVL2 EXISTS GREATEST LEAST COLLATE
    COUNT SUM AVG MIN MAX GROUP_CONCAT STDDEV STDDEV_POP STDDEV_SAMP VARIANCE VARIANCE_POP MEDIAN
    ANY_VALUE COUNT_IF CORR COVAR_POP COVAR_SAMP LOGICAL_AND LOGICAL_OR FIRST LAST MODE
    PERCENTILE_CONT PERCENTILE_DISC APPROX_DISTINCT APPROX_QUANTILE QUANTILE GROUPING ARG_MAX ARG_MIN
    ROW_NUMBER RANK DENSE_RANK PERCENT_RANK CUME_DIST NTILE LAG LEAD FIRST_VALUE LAST_VALUE NTH_VALUE
    ABS CEIL FLOOR ROUND SIGN SQRT CBRT EXP LN LOG POWER PI DEGREES RADIANS SIN COS TAN ASIN ACOS
    ATAN ATAN2 COT SINH COSH TANH TRUNC RAND IS_NAN IS_INF WIDTH_BUCKET SAFE_DIVIDE
    LENGTH LOWER UPPER SUBSTRING TRIM REPLACE CONCAT CONCAT_WS STR_POSITION LEFT RIGHT REVERSE
    REPEAT PAD INITCAP ASCII CHR UNICODE HEX UNHEX SPLIT_PART TRANSLATE REGEXP_REPLACE
    REGEXP_EXTRACT REGEXP_SUBSTR REGEXP_COUNT REGEXP_INSTR REGEXP_LIKE REGEXP_I_LIKE STARTS_WITH ENDS_WITH MD5 SHA SHA2
    SPACE SOUNDEX LEVENSHTEIN BIT_LENGTH TO_CHAR TO_NUMBER SUBSTRING_INDEX FORMAT TYPEOF CONTAINS
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_DATETIME LOCALTIME LOCALTIMESTAMP
    DATE DATETIME TIME TIMESTAMP DATE_ADD DATE_SUB DATEDIFF DATE_TRUNC EXTRACT YEAR MONTH DAY HOUR
    MINUTE SECOND QUARTER WEEK WEEK_OF_YEAR DAY_OF_WEEK DAY_OF_WEEK_ISO DAY_OF_MONTH DAY_OF_YEAR
    DAYNAME MONTHNAME LAST_DAY STR_TO_DATE STR_TO_TIME TIME_TO_STR TS_OR_DS_TO_DATE
    TS_OR_DS_TO_TIMESTAMP TS_OR_DS_TO_DATETIME TS_OR_DS_ADD TS_OR_DS_DIFF TIMESTAMPDIFF TIMESTAMP_ADD
    TIMESTAMP_SUB TIMESTAMP_TRUNC UNIX_TO_TIME TIME_TO_UNIX STR_TO_UNIX UNIX_TO_STR DATE_FROM_PARTS
    TIME_STR_TO_TIME TIME_STR_TO_DATE DATE_STR_TO_DATE DATETIME_ADD DATETIME_SUB DATETIME_DIFF
    DATETIME_TRUNC TIME_ADD TIME_SUB TIME_DIFF MONTHS_BETWEEN ADD_MONTHS MAKE_INTERVAL
    JSON_EXTRACT JSON_EXTRACT_SCALAR JSONB_EXTRACT JSONB_EXTRACT_SCALAR JSON_TYPE
    JSON_ARRAY_CONTAINS JSONB_CONTAINS
    """
)

_SQLITE: Final = _names(
    """
    JULIANDAY STRFTIME UNIXEPOCH TIMEDIFF PRINTF INSTR LTRIM RTRIM SUBSTR IFNULL IIF CHAR TOTAL
    QUOTE RANDOM LIKE GLOB LIKELIHOOD LIKELY UNLIKELY OCTET_LENGTH LOG10 LOG2 POW MOD STRING_AGG
    JSON JSON_ARRAY JSON_ARRAY_LENGTH JSON_OBJECT JSON_VALID JSON_EACH JSON_TREE JSON_GROUP_ARRAY
    JSON_GROUP_OBJECT JSON_QUOTE TRUNC CEILING SIGN
    """
)

_POSTGRES: Final = _names(
    """
    AGE TO_DATE TO_TIMESTAMP DATE_PART NOW STRING_AGG POSITION STRPOS LPAD RPAD BTRIM LTRIM RTRIM
    CHAR_LENGTH CHARACTER_LENGTH OCTET_LENGTH REGEXP_MATCHES REGEXP_MATCH REGEXP_SPLIT_TO_ARRAY
    ARRAY_LENGTH ARRAY_TO_STRING STRING_TO_ARRAY ARRAY_POSITION ARRAY_AGG ARRAY_SIZE UNNEST
    JUSTIFY_DAYS JUSTIFY_HOURS JUSTIFY_INTERVAL MAKE_DATE MAKE_TIMESTAMP MAKE_TIME BOOL_AND
    BOOL_OR EVERY BIT_AND BIT_OR DIV MOD ISFINITE GENERATE_SERIES EXPLODING_GENERATE_SERIES
    JSONB_ARRAY_LENGTH JSON_ARRAY_LENGTH JSONB_TYPEOF JSON_TYPEOF TO_JSON TO_JSONB JSON_BUILD_OBJECT
    JSONB_BUILD_OBJECT JSON_AGG JSONB_AGG CEILING LOG10 CONCAT_WS SUBSTR NULLIF SPLIT_PART
    REGR_SLOPE REGR_INTERCEPT REGR_R2 REGR_COUNT DATE_BIN ARRAY J_S_O_N_OBJECT J_S_O_N_ARRAY_AGG
    """
)

_MYSQL: Final = _names(
    """
    IFNULL DATE_FORMAT TIME_FORMAT NOW CURDATE CURTIME LOCATE INSTR SUBSTR MID LPAD RPAD LTRIM RTRIM
    CHAR_LENGTH CHARACTER_LENGTH OCTET_LENGTH FIND_IN_SET FIELD ELT DAYOFWEEK DAYOFMONTH DAYOFYEAR
    WEEKDAY WEEKOFYEAR YEARWEEK TRUNCATE MOD CONVERT TIMESTAMP FROM_DAYS TO_DAYS PERIOD_DIFF
    DATE_FORMAT MAKEDATE MAKETIME SEC_TO_TIME TIME_TO_SEC UNIX_TIMESTAMP FROM_UNIXTIME CEILING
    LOG10 LOG2 POW STRCMP REGEXP_LIKE CAST_TO_STR_TYPE J_S_O_N_OBJECT J_S_O_N_ARRAY J_S_O_N_ARRAY_AGG
    JSON_UNQUOTE JSON_LENGTH JSON_KEYS JSON_CONTAINS DATE_SUB DATE_ADD ADDDATE SUBDATE
    """
)

_DUCKDB: Final = _names(
    """
    STRFTIME STRPTIME DATE_PART DATE_DIFF DATEPART DATE_SUB NOW STRING_AGG LIST LIST_AGG
    REGEXP_MATCHES REGEXP_FULL_MATCH REGEXP_SPLIT LPAD RPAD LTRIM RTRIM INSTR POSITION STRPOS
    SUBSTR IFNULL UNNEST GENERATE_SERIES EXPLODING_GENERATE_SERIES ARRAY ARRAY_LENGTH ARRAY_SIZE
    ARRAY_CONTAINS ARRAY_TO_STRING ARRAY_AGG STRUCT_EXTRACT BOOL_AND BOOL_OR MAKE_DATE MAKE_TIMESTAMP
    EPOCH CEILING LOG10 LOG2 POW MOD IIF JSON_EXTRACT_STRING LIST_CONTAINS LEN CHAR_LENGTH
    """
)

ALLOWED_FUNCTIONS: Final[dict[str, frozenset[str]]] = {
    "sqlite": _COMMON | _SQLITE,
    "postgres": _COMMON | _POSTGRES,
    "mysql": _COMMON | _MYSQL,
    "duckdb": _COMMON | _DUCKDB,
}
