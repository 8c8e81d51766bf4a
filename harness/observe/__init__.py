"""What the harness sees: the revision files autogenerate wrote, the database's schema, and a run
turned into normalised, snapshot-ready data."""
