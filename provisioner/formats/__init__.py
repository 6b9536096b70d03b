"""Decoders of the schema'd record formats (Confluent wire format) into the values expressions read."""
