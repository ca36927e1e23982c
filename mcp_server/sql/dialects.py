"""Per-dialect guard data: which AST node types and which functions a read query may use.

This module owns the allowlists as DATA; ``mcp_server.sql.guard`` owns the single walk that applies
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
    "ALLOWED_ONLY_IN",
    "ALLOWED_ROOTS",
    "ATTRIBUTE_NOTATION_DIALECTS",
    "BLOCKED_NODE_RULES",
    "DIALECTS",
    "DUCKDB_OPERATOR_CHARS",
    "ENGINE_BUILTIN_SCHEMAS",
    "ENGINE_FUNCTIONS",
    "EXECUTABLE_COMMENT_MARKERS",
    "FILE_PATH_TABLE_CHARS",
    "MAX_BARE_JOINS",
    "MAX_PAREN_DEPTH",
    "MAX_SQL_CHARS",
    "SQLITE_INLINE_FUNCTIONS",
    "SQLITE_READ_PRAGMAS",
    "TABLE_FUNCTION_PREFIXES",
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
# sqlglot's parse time doubles with every JOIN that has no ON/USING (it tries the nested-join reading of
# each: 20 such joins take 6 s, 30 hours), so a short statement could hold a worker's core for good.
# CROSS JOIN and commas are read at once; the 11,332 gold queries of Spider, Spider-Syn/-DK and BIRD have at
# most 2 JOINs without a condition.
MAX_BARE_JOINS: Final = 8

# Comments the engine executes or obeys: MySQL/MariaDB conditional comments (/*! ... */, /*M! ... */)
# and optimizer hints (/*+ SET_VAR(max_execution_time=0) */ would lift the timeout). Rejected in
# every dialect: no legitimate read needs them.
EXECUTABLE_COMMENT_MARKERS: Final = ("/*!", "/*M!", "/*+")

# Dialects whose engine reads ``(x).f`` as a call of ``f(x)`` (PostgreSQL's attribute notation): the guard
# checks ``f`` as a function there. (``alias.f`` is a call only when ``f`` takes a whole row, which no
# built-in outside the allowlist that matters does; the engine's own check covers user functions.)
ATTRIBUTE_NOTATION_DIALECTS: Final = frozenset({"postgres"})

# Table names an engine reads as a call: SQLite's ``FROM pragma_table_list`` is the pragma function
# ``pragma_table_list()``, checked against the function allowlist like one.
TABLE_FUNCTION_PREFIXES: Final[dict[str, str]] = {"sqlite": "pragma_"}

# DuckDB resolves an unknown table name that looks like a path or URL through a replacement scan
# (FROM 'x.csv', FROM "s3://b/x.parquet"). Per dialect: characters that make a table name a path.
FILE_PATH_TABLE_CHARS: Final[dict[str, frozenset[str]]] = {
    "duckdb": frozenset("./\\:*?~"),
}

# --- node types -------------------------------------------------------------------------------

# Statement kinds allowed at the top level (a bare VALUES list is a read in every dialect here).
ALLOWED_ROOTS: Final = frozenset({"Select", "Union", "Intersect", "Except", "Subquery", "Values"})

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
    Introducer Lambda Comprehension
    """
)

# Node types allowed only directly inside certain parents: a DuckDB struct literal's ``'key': value``
# pairs parse as PropertyEQ, which elsewhere is an assignment (MySQL ``@x := 1``).
ALLOWED_ONLY_IN: Final[dict[str, frozenset[str]]] = {"PropertyEQ": frozenset({"Struct"})}

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
    REPEAT PAD INITCAP ASCII CHR UNICODE HEX LOWER_HEX UNHEX SPLIT_PART TRANSLATE REGEXP_REPLACE
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
    PRAGMA_TABLE_INFO PRAGMA_TABLE_XINFO PRAGMA_TABLE_LIST PRAGMA_INDEX_LIST PRAGMA_INDEX_INFO
    PRAGMA_INDEX_XINFO PRAGMA_FOREIGN_KEY_LIST
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
    STRUCT EXPLODE COLUMNS TRANSFORM FILTER
    """
)

ALLOWED_FUNCTIONS: Final[dict[str, frozenset[str]]] = {
    "sqlite": _COMMON | _SQLITE,
    "postgres": _COMMON | _POSTGRES,
    "mysql": _COMMON | _MYSQL,
    "duckdb": _COMMON | _DUCKDB,
}

# The SQLite functions (the guard's names, above) whose result is no larger than their arguments or a
# small constant: a statement that calls only these cannot build a large value, so each VM step stays
# short and ``SqliteEngine.execute_inline`` may run it on the caller's thread. Anything else (printf,
# replace, group_concat, hex, quote, concat, JSON builders, ...) and the ``||`` operator send the
# statement to a worker thread. A subset of ``ALLOWED_FUNCTIONS["sqlite"]`` (tests/test_dialects.py).
SQLITE_INLINE_FUNCTIONS: Final = _names(
    """
    AND OR XOR CASE IF CAST TRY_CAST COALESCE NULLIF EXISTS
    COUNT SUM AVG MIN MAX TOTAL GREATEST LEAST
    ABS ROUND SIGN CEIL FLOOR TRUNC MOD POW SQRT EXP LN LOG
    LENGTH OCTET_LENGTH LOWER UPPER SUBSTRING TRIM STR_POSITION UNICODE
    TYPEOF LIKELY UNLIKELY LIKELIHOOD RANDOM RAND
    DATE TIME DATETIME JULIANDAY UNIXEPOCH TIME_TO_STR STRFTIME
    TS_OR_DS_TO_TIMESTAMP TS_OR_DS_TO_DATE CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP
    ROW_NUMBER RANK DENSE_RANK PERCENT_RANK CUME_DIST NTILE
    LAG LEAD FIRST_VALUE LAST_VALUE NTH_VALUE
    """
)


# --- what the engines themselves report -------------------------------------------------------
#
# Each engine also reports, in its own words, which functions a statement calls (see
# ``mcp_server.db.engines.calls``), and every one must be in its list below (or in ``extra_functions``).
# These are the engines' own names, lower case (MariaDB renders ``upper`` as ``ucase``, PostgreSQL
# ``x LIKE y`` as an operator, DuckDB ``[1, 2]`` as ``list_value``), for the same side-effect-free
# built-ins the guard's lists allow. A name missing here refuses a harmless statement (the test
# ``tests/security/test_engine_calls.py`` runs the Spider gold queries on every engine to catch that);
# a name present wrongly would let a call through, so nothing that reads files, sleeps, locks, signals,
# changes settings or sequences, talks to the network or runs SQL text is ever listed.

_SQLITE_NATIVE: Final = _names(
    """
    abs char coalesce concat concat_ws format glob hex ifnull iif if instr length like likelihood likely
    lower ltrim max min nullif octet_length printf quote random replace round rtrim sign soundex substr
    substring trim typeof unhex unicode unistr unistr_quote unlikely upper
    date time datetime julianday unixepoch strftime timediff current_date current_time current_timestamp
    avg count group_concat string_agg sum total median percentile percentile_cont percentile_disc
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod
    pi pow power radians sin sinh sqrt tan tanh trunc
    json jsonb json_array jsonb_array json_array_length json_extract jsonb_extract json_insert
    jsonb_insert json_replace jsonb_replace json_set jsonb_set json_remove jsonb_remove json_patch
    jsonb_patch json_object jsonb_object json_type json_valid json_quote json_group_array
    jsonb_group_array json_group_object jsonb_group_object json_each json_tree json_pretty
    -> ->>
    """
)

# Table-valued PRAGMA functions a read may use (``SELECT * FROM pragma_table_info('t')``): the schema of
# the database's own tables. Not ``database_list`` (it shows the server's file path) nor any pragma that
# changes something.
SQLITE_READ_PRAGMAS: Final = _names(
    "table_info table_xinfo table_list index_list index_info index_xinfo foreign_key_list"
)

_POSTGRES_NATIVE: Final = _names(
    """
    count sum avg min max string_agg array_agg bool_and bool_or every bit_and bit_or bit_xor stddev
    stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_slope regr_intercept
    regr_r2 regr_count regr_avgx regr_avgy regr_sxx regr_sxy regr_syy percentile_cont percentile_disc
    mode json_agg jsonb_agg json_object_agg jsonb_object_agg any_value
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    abs ceil ceiling floor round trunc sign sqrt cbrt exp ln log log10 power pi degrees radians sin cos
    tan asin acos atan atan2 cot sind cosd tand asind acosd atand atan2d cotd sinh cosh tanh asinh acosh
    atanh mod div width_bucket gcd lcm factorial scale min_scale trim_scale random
    length char_length character_length octet_length bit_length lower upper initcap substr substring
    position strpos replace translate left right lpad rpad ltrim rtrim btrim trim concat concat_ws repeat
    reverse split_part ascii chr md5 sha224 sha256 sha384 sha512 encode decode format quote_literal
    quote_ident quote_nullable starts_with regexp_replace regexp_match regexp_matches
    regexp_split_to_array regexp_split_to_table regexp_like regexp_count regexp_instr regexp_substr
    overlay to_hex string_to_array string_to_table array_to_string normalize unistr similar_escape
    like_escape textlen
    now current_timestamp current_time localtimestamp localtime statement_timestamp
    transaction_timestamp clock_timestamp timeofday date_part date_trunc extract age to_char to_date
    to_timestamp to_number make_date make_time make_timestamp make_timestamptz make_interval
    justify_days justify_hours justify_interval date_bin isfinite timezone date_add date_subtract
    coalesce nullif greatest least
    array_length array_upper array_lower array_position array_positions cardinality array_cat
    array_append array_prepend array_remove array_replace unnest array_dims array_ndims generate_series
    generate_subscripts array_fill trim_array array_sample array_shuffle
    json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
    json_array_length jsonb_array_length json_typeof jsonb_typeof json_extract_path
    json_extract_path_text jsonb_extract_path jsonb_extract_path_text json_each jsonb_each
    json_each_text jsonb_each_text json_array_elements jsonb_array_elements json_array_elements_text
    jsonb_array_elements_text json_object_keys jsonb_object_keys row_to_json array_to_json
    json_strip_nulls jsonb_strip_nulls jsonb_pretty jsonb_path_exists jsonb_path_match
    jsonb_path_query jsonb_path_query_array jsonb_path_query_first json_object jsonb_set jsonb_insert
    numeric int2 int4 int8 float4 float8 text varchar bpchar bool date time timestamp timestamptz
    interval row array exists
    """
)

_MARIADB_NATIVE: Final = _names(
    """
    count sum avg min max group_concat std stddev stddev_pop stddev_samp variance var_pop var_samp
    bit_and bit_or bit_xor json_arrayagg json_objectagg median percentile_cont percentile_disc
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    abs ceiling ceil floor round truncate sign sqrt exp ln log log2 log10 pow power pi degrees radians
    sin cos tan asin acos atan atan2 cot mod rand crc32 conv oct bin hex unhex
    ucase lcase upper lower substr substring substring_index locate instr position length char_length
    character_length octet_length bit_length concat concat_ws replace reverse repeat space lpad rpad
    ltrim rtrim trim left right mid field elt find_in_set format strcmp soundex ascii ord char md5 sha
    sha1 sha2 quote regexp_replace regexp_substr regexp_instr
    curdate curtime current_date current_time current_timestamp now sysdate utc_date utc_time
    utc_timestamp localtime localtimestamp date time timestamp year month day dayofmonth dayofweek
    dayofyear weekday week weekofyear yearweek hour minute second microsecond quarter monthname dayname
    date_format time_format str_to_date date_add date_sub adddate subdate addtime subtime datediff
    timediff timestampdiff timestampadd extract to_days from_days to_seconds unix_timestamp
    from_unixtime makedate maketime period_add period_diff sec_to_time time_to_sec last_day
    if ifnull nullif coalesce greatest least isnull cast convert exists trigcond
    json_extract json_unquote json_value json_length json_keys json_contains json_contains_path
    json_type json_valid json_object json_array json_quote json_depth json_search
    """
)

_DUCKDB_NATIVE: Final = _names(
    """
    count count_star sum avg mean min max string_agg group_concat listagg list array_agg bool_and bool_or
    bit_and bit_or bit_xor stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop
    covar_samp regr_slope regr_intercept regr_r2 regr_count median mode quantile quantile_cont
    quantile_disc approx_count_distinct approx_quantile arg_max arg_min argmax argmin max_by min_by
    first last any_value product sumkahan fsum favg histogram entropy kurtosis skewness
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    abs ceil ceiling floor round trunc sign sqrt cbrt exp ln log log10 log2 pow power pi degrees radians
    sin cos tan asin acos atan atan2 cot sinh cosh tanh asinh acosh atanh mod fmod div gcd lcm factorial
    even isnan isinf isfinite random least greatest bit_count
    length len char_length character_length octet_length bit_length strlen lower lcase upper ucase
    substr substring substring_grapheme position strpos instr replace translate left right lpad rpad
    ltrim rtrim trim concat concat_ws repeat reverse split_part string_split str_split string_split_regex
    ascii chr unicode md5 sha1 sha256 hash format printf starts_with ends_with prefix suffix contains
    regexp_replace regexp_matches regexp_full_match regexp_extract regexp_extract_all regexp_split_to_array
    like_escape ilike_escape levenshtein damerau_levenshtein hamming jaccard jaro_similarity
    jaro_winkler_similarity editdist3 to_base to_hex hex unhex bin array_to_string list_aggregate
    now current_date current_time current_timestamp today get_current_time get_current_timestamp
    date_part datepart date_trunc datetrunc date_diff datediff date_sub datesub date_add extract age
    strftime strptime try_strptime epoch epoch_ms epoch_us epoch_ns make_date make_time make_timestamp
    to_timestamp year month day dayofmonth dayofweek dayofyear weekday week weekofyear yearweek hour
    minute second millisecond microsecond quarter monthname dayname last_day isodow isoyear era decade
    century millennium julian to_days to_months to_years to_hours to_minutes to_seconds
    to_milliseconds to_microseconds time_bucket
    coalesce nullif ifnull if iif
    list_value list_pack array_value struct_pack row array_extract list_extract list_element
    array_slice list_slice unnest generate_series range array_length list_contains list_has
    array_contains array_has list_position array_position list_sort array_sort list_distinct
    array_distinct list_unique list_reverse list_concat array_concat list_cat flatten list_transform
    array_transform list_apply array_apply apply list_filter array_filter filter list_reduce
    array_reduce reduce list_sum list_min list_max list_avg list_count list_string_agg cardinality
    map map_keys map_values map_extract element_at struct_extract struct_insert
    json_extract json_extract_string json_extract_path json_extract_path_text json_array_length
    json_type json_valid json_keys json_object json_array json_quote to_json json_structure
    columns typeof
    """
)

# DuckDB writes operators as functions named by their symbol (``+``, ``||``, ``~~`` for LIKE): a name made
# only of these characters is an operator, and DuckDB's operators are built in and side-effect free.
DUCKDB_OPERATOR_CHARS: Final = frozenset("+-*/%^|&<>=~!@#")

ENGINE_FUNCTIONS: Final[dict[str, frozenset[str]]] = {
    "sqlite": _SQLITE_NATIVE,
    "postgres": _POSTGRES_NATIVE,
    "mysql": _MARIADB_NATIVE,
    "duckdb": _DUCKDB_NATIVE,
}

# Qualifiers that name an engine's built-in functions: ``pg_catalog.upper`` is ``upper``.
ENGINE_BUILTIN_SCHEMAS: Final[dict[str, frozenset[str]]] = {
    "sqlite": frozenset(),
    "postgres": frozenset({"pg_catalog"}),
    "mysql": frozenset(),
    "duckdb": frozenset(),
}
