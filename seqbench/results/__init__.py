"""Results: the schema (one Row definition), the writer (append-safe, atomic), the reader (validating) and merge."""
