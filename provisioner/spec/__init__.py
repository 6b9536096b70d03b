"""The DataProduct spec: the pydantic model (`models`), bounded YAML reading with line and column
positions (`yamlsafe`, `loader`), semantic checks beyond the model (`semantics`, `overlaps` across products,
`schema_rules` and `linear_regex` for `source.schema`), findings that name file, line, column and
field (`findings`, worded by `wording`), durations, names and RFC 3339 timestamps, the content
fingerprint that says which changes rebuild a store (`fingerprint`), and the JSON Schema the CLI
prints (`export`). Pure: no I/O beyond reading the spec files it is given."""
