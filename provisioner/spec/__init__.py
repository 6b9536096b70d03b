"""The DataProduct spec: the pydantic model (`models`), bounded YAML reading with line and column
positions (`yamlsafe`, `loader`), semantic checks beyond the model (`semantics`), findings that
name file, line, column and field (`findings`), durations, names and RFC 3339 timestamps, and the
JSON Schema the CLI prints (`export`). Pure: no I/O beyond reading the spec files it is given."""
