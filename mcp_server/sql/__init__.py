"""Reading SQL text: the read-only guard and the dialect tables it uses."""
