"""What a database holds: schema inspection, descriptions, schema linking."""
