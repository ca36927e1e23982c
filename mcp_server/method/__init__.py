"""The SQL-R1 method: prompts, the answer parser, result comparison, the catalog grammar, value
retrieval, review feedback, confidence and shape checks."""
