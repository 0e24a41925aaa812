"""Transforms: components computed from other components by DuckDB SQL or a Python function.

`component` runs them (`run_transform`), `plan` decides which output partitions to compute,
`sql` and `python` run the code.
"""
